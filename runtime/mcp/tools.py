"""The MCP tools: what an assistant may do with the personas and what they remember of
its user. Each is a :class:`~runtime.mcp.types.Tool` whose ``run`` calls the use case
every other interface calls (the persona store, the chat service, its inspection and its
facts), so a tool decides nothing of its own. To add a tool: an :class:`Arguments`
model, a function, a view of its result, and an entry in :data:`TOOLS`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from runtime.mcp.types import Arguments, Call, Tool
from runtime.usecases.facts import MAX_FACT_CHARS
from runtime.usecases.replies import ask
from runtime.views.mcp import (
    ChatAnswer,
    FactCorrected,
    FactDeleted,
    FactLine,
    Forgotten,
    KnownFacts,
    MemoryList,
    PersonaBrief,
    PersonaList,
    PersonaMatch,
    PersonaMatches,
    RecalledLine,
    RecalledMemories,
    Remembered,
    RememberedLine,
    SessionOpened,
)

PersonaKey = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="the persona's slug, as list_personas gives it (or its id)"),
]
UserKey = Annotated[
    str | None,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    Field(
        default=None,
        description="another user's memories (admins only); by default the caller's own",
    ),
]

FactUserKey = Annotated[
    str | None,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    Field(
        default=None,
        description="another user's facts (admins only); by default the caller's own",
    ),
]


# ---- personas ---------------------------------------------------------------------------


class ListPersonasArguments(Arguments):
    domain: str | None = Field(
        default=None, min_length=1, max_length=60, description="only this domain, e.g. physics"
    )
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


async def list_personas(call: Call, args: ListPersonasArguments) -> PersonaList:
    page = await call.caller.chat.services.personas.list(
        offset=args.offset, limit=args.limit, domain=args.domain, active=True
    )
    return PersonaList(
        personas=[PersonaBrief.of(p) for p in page.items], total=page.total, offset=args.offset
    )


class SearchPersonasArguments(Arguments):
    query: str = Field(
        min_length=1, max_length=200, description="who you look for: a field, a name, a trait"
    )
    limit: int = Field(default=10, ge=1, le=50)


async def search_personas(call: Call, args: SearchPersonasArguments) -> PersonaMatches:
    hits = await call.caller.chat.services.catalog.search(args.query, limit=args.limit)
    return PersonaMatches(
        query=args.query,
        personas=[PersonaMatch.matched(h.persona, h.score) for h in hits if h.persona.active],
    )


# ---- memories ---------------------------------------------------------------------------


class SearchMemoriesArguments(Arguments):
    persona: PersonaKey
    query: str = Field(min_length=1, max_length=2_000, description="what to look for")
    k: int = Field(default=10, ge=1, le=50, description="how many memories, best first")
    session_id: uuid.UUID | None = Field(default=None, description="only this conversation's")
    user: UserKey


async def search_memories(call: Call, args: SearchMemoriesArguments) -> RecalledMemories:
    chat, who = call.caller.chat, call.caller.principal
    found = await chat.inspection.search_memories(
        who, args.persona, args.query, k=args.k, session_id=args.session_id, user=args.user
    )
    return RecalledMemories(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=args.user or who.user_id,
        query=args.query,
        memories=[RecalledLine.recalled(m) for m in found],
    )


class ListMemoriesArguments(Arguments):
    persona: PersonaKey
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = Field(
        default=None, min_length=1, max_length=500, description="next_cursor of the page before"
    )
    session_id: uuid.UUID | None = Field(default=None, description="only this conversation's")
    user: UserKey


async def list_memories(call: Call, args: ListMemoriesArguments) -> MemoryList:
    chat, who = call.caller.chat, call.caller.principal
    page = await chat.inspection.list_memories(
        who,
        args.persona,
        session_id=args.session_id,
        user=args.user,
        limit=args.limit,
        cursor=args.cursor,
    )
    return MemoryList(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=args.user or who.user_id,
        memories=[RememberedLine.of(r) for r in page.records],
        next_cursor=page.next_cursor,
    )


class RememberArguments(Arguments):
    persona: PersonaKey
    statement: str = Field(
        min_length=1,
        max_length=8_000,
        description="what the user says about themselves, in their words: 'My cat is called Miso.'",
    )
    user: UserKey


async def remember(call: Call, args: RememberArguments) -> Remembered:
    chat, who = call.caller.chat, call.caller.principal
    record = await chat.inspection.remember(who, args.persona, args.statement, user=args.user)
    return Remembered(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=record.user_id,
        memory=RememberedLine.of(record),
    )


class ForgetArguments(Arguments):
    persona: PersonaKey
    memory_id: uuid.UUID = Field(description="the id of a memory search or list gave")
    user: UserKey


async def forget(call: Call, args: ForgetArguments) -> Forgotten:
    chat, who = call.caller.chat, call.caller.principal
    await chat.inspection.delete_memory(who, args.persona, args.memory_id, user=args.user)
    return Forgotten(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=args.user or who.user_id,
        memory_id=args.memory_id,
    )


# ---- facts ------------------------------------------------------------------------------


class ListFactsArguments(Arguments):
    persona: PersonaKey
    history: bool = Field(
        default=False,
        description="also the facts no longer true (superseded), with when they stopped",
    )
    user: FactUserKey


async def list_facts(call: Call, args: ListFactsArguments) -> KnownFacts:
    chat, who = call.caller.chat, call.caller.principal
    found = await chat.facts.list(who, args.persona, user=args.user)
    return KnownFacts(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=args.user or who.user_id,
        facts=[FactLine.of(f) for f in found if args.history or f.current],
    )


class CorrectFactArguments(Arguments):
    persona: PersonaKey
    fact_id: uuid.UUID = Field(description="the id of a current fact list_facts gave")
    text: str = Field(
        min_length=1,
        max_length=MAX_FACT_CHARS,
        description="what is true instead, as a fact about the user: 'Uma lives in Porto.'",
    )
    user: FactUserKey


async def correct_fact(call: Call, args: CorrectFactArguments) -> FactCorrected:
    chat, who = call.caller.chat, call.caller.principal
    fact = await chat.facts.correct(who, args.persona, args.fact_id, args.text, user=args.user)
    return FactCorrected(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=fact.user_id,
        fact=FactLine.of(fact),
    )


class DeleteFactArguments(Arguments):
    persona: PersonaKey
    fact_id: uuid.UUID = Field(description="the id of a fact list_facts gave")
    user: FactUserKey


async def delete_fact(call: Call, args: DeleteFactArguments) -> FactDeleted:
    chat, who = call.caller.chat, call.caller.principal
    await chat.facts.delete(who, args.persona, args.fact_id, user=args.user)
    return FactDeleted(
        persona=(await chat.services.personas.get(args.persona)).slug,
        user=args.user or who.user_id,
        fact_id=args.fact_id,
    )


# ---- conversations ----------------------------------------------------------------------


class StartSessionArguments(Arguments):
    persona: PersonaKey
    title: str = Field(default="", max_length=200, description="a name for the conversation")


async def start_session(call: Call, args: StartSessionArguments) -> SessionOpened:
    chat, who = call.caller.chat, call.caller.principal
    session, found = await chat.start_session(who, [args.persona], title=args.title or "MCP")
    persona = found[0]
    opening = await chat.history(who, session.id, before=None, limit=5)
    greeting = next((m for m in opening.items if m.persona_id == persona.id), None)
    return SessionOpened.of(session, persona, greeting)


class ChatArguments(Arguments):
    session_id: uuid.UUID = Field(description="the session start_session opened")
    message: str = Field(min_length=1, max_length=8_000, description="what the user says")


async def chat(call: Call, args: ChatArguments) -> ChatAnswer:
    caller = call.caller

    async def written(text: str, characters: int) -> None:
        await call.report(characters, None, text)

    answer = await ask(
        caller.chat,
        caller.principal,
        session_id=args.session_id,
        text=args.message,
        progress=written,
        also=caller.room(args.session_id) if caller.room is not None else None,
    )
    return ChatAnswer.of(answer)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        "list_personas",
        "List personas",
        "The active personas by name: who the user can talk to. Each persona remembers "
        "what the user told it; its slug names it in every other tool.",
        ListPersonasArguments,
        PersonaList,
        list_personas,
    ),
    Tool(
        "search_personas",
        "Search personas",
        "Find personas by meaning and words (a field, an era, a way of speaking), best "
        "match first.",
        SearchPersonasArguments,
        PersonaMatches,
        search_personas,
    ),
    Tool(
        "search_memories",
        "Search memories",
        "What a persona remembers of the user that matches a query: lines the user said "
        "(and the persona's replies) in conversations, and statements remembered, best "
        "first, with their ids and when they were said.",
        SearchMemoriesArguments,
        RecalledMemories,
        search_memories,
    ),
    Tool(
        "list_memories",
        "List memories",
        "What a persona remembers of the user, the newest first, a page at a time.",
        ListMemoriesArguments,
        MemoryList,
        list_memories,
    ),
    Tool(
        "remember",
        "Remember a statement",
        "Have a persona remember something the user says about themselves, as if they "
        "had told it in a conversation: later conversations with the persona recall it. "
        "The same statement remembered again is stored once.",
        RememberArguments,
        Remembered,
        remember,
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
    Tool(
        "forget",
        "Forget a memory",
        "Delete one memory of the user (its id from search_memories or list_memories): "
        "the persona no longer recalls it. The conversation's transcript is kept.",
        ForgetArguments,
        Forgotten,
        forget,
        read_only=False,
        destructive=True,
        idempotent=False,
    ),
    Tool(
        "list_facts",
        "List facts about the user",
        "What a persona knows about the user: short statements derived from what the user "
        "said ('Uma lives in Porto.'), by subject, each with when it became true and the "
        "messages it came from. Only the current ones unless history is asked for; a fact "
        "no longer true says when it stopped and which fact superseded it.",
        ListFactsArguments,
        KnownFacts,
        list_facts,
    ),
    Tool(
        "correct_fact",
        "Correct a fact",
        "Replace a current fact about the user (its id from list_facts) by what is true: "
        "the correction becomes the current fact on its subject and the one corrected "
        "stays as history.",
        CorrectFactArguments,
        FactCorrected,
        correct_fact,
        read_only=False,
        destructive=False,
        idempotent=False,
    ),
    Tool(
        "delete_fact",
        "Delete a fact",
        "Delete a fact about the user (its id from list_facts), current or past: the "
        "persona no longer knows it. Nothing it had superseded becomes current again.",
        DeleteFactArguments,
        FactDeleted,
        delete_fact,
        read_only=False,
        destructive=True,
        idempotent=False,
    ),
    Tool(
        "start_session",
        "Start a conversation",
        "Open a new conversation of the user with a persona; pass its session_id to chat. "
        "A persona from a character card may open with a greeting.",
        StartSessionArguments,
        SessionOpened,
        start_session,
        read_only=False,
        idempotent=False,
    ),
    Tool(
        "chat",
        "Chat with a persona",
        "Say something to the persona of a session and get its reply, in its own voice, "
        "with what it remembers of the user. The exchange is stored in the session and "
        "remembered. While the reply is written, progress notifications carry it so far "
        "(when the client asks for progress).",
        ChatArguments,
        ChatAnswer,
        chat,
        read_only=False,
        idempotent=False,
    ),
)
"""Every tool, in the order they are listed."""
