"""The multi-persona director: who answers a user message in a session with several
personas, and autonomous rounds where personas talk among themselves.

Policies: ``mention`` (who is addressed answers; nobody addressed: the next in turn),
``round_robin``, ``all``, ``selector`` (a heuristic picks the persona whose domains and
description best match the message) and ``autonomous`` (after answering, personas keep
talking for a bounded number of turns until the user interrupts).

The director reads the session's personas to pick who answers, and hands each turn the
persona it read: a turn never reads its persona again."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from agents.tracker import TraitUpdate
from agents.turn import TurnGraph, run_turn
from agents.types import AgentServices, TurnEvents, TurnRequest, TurnResult
from memory.record.transcripts import Message, Session
from personas import Persona, PersonaNotFound

Policy = Literal["mention", "round_robin", "all", "selector", "autonomous"]
POLICIES: tuple[str, ...] = get_args(Policy)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "about",
        "what",
        "how",
        "why",
        "who",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "you",
        "your",
        "i",
        "me",
        "my",
        "we",
        "our",
        "it",
        "this",
        "that",
        "be",
        "can",
        "could",
        "would",
        "should",
        "tell",
    ]
)


class Director:
    def __init__(self, services: AgentServices, graph: TurnGraph) -> None:
        self._services = services
        self._graph = graph

    async def participants(self, session: Session) -> list[Persona]:
        """The session's personas that still exist (a deleted one leaves the room)."""
        found = []
        for pid in session.persona_ids:
            try:
                found.append(await self._services.personas.get(pid))
            except PersonaNotFound:
                continue
        return found

    async def respond(
        self,
        session: Session,
        message: Message,
        *,
        user_name: str,
        events: TurnEvents,
        to: Sequence[str] = (),
        mode: str | None = None,
        fresh: bool = False,
        channel: str | None = None,
    ) -> list[TurnResult]:
        """Answer a stored user message with the persona(s) the session's policy picks,
        one after another (each sees the replies before it). The next persona starts as
        soon as the one before has stored its reply: it does not wait for that reply's
        memories and traits. A persona that already answered this message (a retried
        send) is not run again: its stored reply is reported instead (``fresh``: the
        message was just stored, so none has)."""
        t0 = time.perf_counter()
        personas = await self.participants(session)
        load_ms = _ms_since(t0)  # the room's read serves each turn as its persona's load
        last = None
        if len(personas) > 1:
            last = _last_speaker(await self._services.memory.transcripts.recent(session.id, 20))
        chosen = choose(session.policy, personas, message.text, to, last)
        turns: list[asyncio.Task[TurnResult]] = []
        try:
            for persona in chosen:
                stored = asyncio.Event()
                turn = asyncio.create_task(
                    self._turn(
                        session,
                        persona,
                        personas,
                        message,
                        user_name,
                        _Stored(events, stored),
                        mode,
                        fresh=fresh,
                        channel=channel,
                        load_ms=load_ms,
                    ),
                    name=f"turn-{persona.slug}-{message.id}",
                )
                turns.append(turn)
                await _until(stored, turn)
            return list(await asyncio.gather(*turns))
        finally:
            for turn in turns:
                turn.cancel()  # only when this call is cancelled or a turn raised
            await asyncio.gather(*turns, return_exceptions=True)

    async def autonomous(
        self,
        session: Session,
        *,
        user_name: str,
        rounds: int,
        events: TurnEvents,
        interrupt: asyncio.Event,
    ) -> list[TurnResult]:
        """Let the personas talk among themselves for at most ``rounds`` turns, each
        answering the latest line; stops early when ``interrupt`` is set (a new user
        message) or a turn fails."""
        t0 = time.perf_counter()
        personas = await self.participants(session)
        load_ms = _ms_since(t0)
        results: list[TurnResult] = []
        if len(personas) < 2:
            return results
        for round_ in range(rounds):
            if interrupt.is_set():
                break
            recent = await self._services.memory.transcripts.recent(session.id, 1)
            if not recent:
                break
            last = recent[-1]
            persona = _next_after(personas, last.persona_id)
            if round_:
                # the room was read before the first round; since then a persona may
                # have evolved (its own last reply), been edited or deleted
                t0 = time.perf_counter()
                try:
                    persona = await self._services.personas.get(persona.id)
                except PersonaNotFound as exc:
                    await events.failed(None, "persona_not_found", str(exc))
                    results.append(TurnResult(None, None, "failed", "persona_not_found", str(exc)))
                    break
                load_ms = _ms_since(t0)
            result = await self._turn(
                session, persona, personas, last, user_name, events, None, load_ms=load_ms
            )
            results.append(result)
            if result.status != "complete":
                break
        return results

    async def _turn(
        self,
        session: Session,
        persona: Persona,
        personas: Sequence[Persona],
        message: Message,
        user_name: str,
        events: TurnEvents,
        mode: str | None,
        *,
        fresh: bool = False,
        channel: str | None = None,
        load_ms: float = 0.0,
    ) -> TurnResult:
        existing = (
            None
            if fresh
            else await self._services.memory.transcripts.reply_to(message.id, persona.id)
        )
        if existing is not None:
            await events.done(persona, existing, dict(existing.timings))
            return TurnResult(persona, existing, existing.status)
        request = TurnRequest(
            session_id=session.id,
            persona=persona,
            user_id=session.user_id,
            user_name=user_name,
            user_message=message,
            others=tuple(p.name for p in personas if p.id != persona.id),
            mode=mode,
            handles=tuple(p.slug for p in personas if p.id != persona.id),
            channel=channel or session.metadata.get("channel"),
        )
        return await run_turn(self._graph, self._services, request, events, persona_load_ms=load_ms)


class _Stored:
    """Events passed through; ``stored`` is set once the reply is stored (or the turn
    failed before it could be)."""

    def __init__(self, events: TurnEvents, stored: asyncio.Event) -> None:
        self._events = events
        self._stored = stored

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        await self._events.started(persona, reply_id)

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        await self._events.token(persona, reply_id, delta)

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        try:
            await self._events.done(persona, message, timings)
        finally:
            self._stored.set()

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        try:
            await self._events.failed(persona, code, message)
        finally:
            self._stored.set()

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        await self._events.traits(persona, update)


async def _until(stored: asyncio.Event, turn: asyncio.Task[TurnResult]) -> None:
    """Wait until the turn's reply is stored or the turn is over (whichever is first)."""
    waiter = asyncio.create_task(stored.wait(), name="reply-stored")
    try:
        await asyncio.wait({waiter, turn}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)


def choose(
    policy: str,
    personas: Sequence[Persona],
    text: str,
    to: Sequence[str] = (),
    last_speaker: uuid.UUID | None = None,
) -> list[Persona]:
    """The personas that answer ``text``, in order."""
    if not personas:
        return []
    if len(personas) == 1:
        return [personas[0]]
    addressed = _addressed(personas, text, to)
    if policy == "all":
        return list(personas)
    if policy in ("mention", "autonomous"):
        return addressed or [_next_after(personas, last_speaker)]
    if policy == "selector":
        return addressed or [_select(personas, text, last_speaker)]
    return addressed[:1] or [_next_after(personas, last_speaker)]  # round_robin


def _addressed(personas: Sequence[Persona], text: str, to: Sequence[str]) -> list[Persona]:
    wanted = {t.strip().lower() for t in to}
    lowered = text.lower()
    found = []
    for p in personas:
        names = {str(p.id), p.slug, p.name.lower()}
        if names & wanted:
            found.append(p)
            continue
        first = p.name.split()[0].lower()
        last = p.name.split()[-1].lower()
        mention = re.search(
            rf"@({re.escape(p.slug)}|{re.escape(first)}|{re.escape(last)})\b", lowered
        )
        vocative = re.search(rf"^\s*({re.escape(first)}|{re.escape(last)})\s*[,:]", lowered)
        if mention or vocative or re.search(rf"\b{re.escape(p.name.lower())}\b", lowered):
            found.append(p)
    return found


def _next_after(personas: Sequence[Persona], last: uuid.UUID | None) -> Persona:
    ids = [p.id for p in personas]
    if last in ids:
        return personas[(ids.index(last) + 1) % len(personas)]
    return personas[0]


def _select(personas: Sequence[Persona], text: str, last: uuid.UUID | None) -> Persona:
    words = set(_WORD.findall(text.lower())) - _STOP
    best, best_score = None, 0.0
    for p in personas:
        vocabulary = set(
            _WORD.findall(" ".join((*p.domains, p.role, p.description, p.name)).lower())
        )
        score = len(words & vocabulary) + 2.0 * len(words & set(p.domains))
        if score > best_score:
            best, best_score = p, score
    return best or _next_after(personas, last)


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _last_speaker(recent: Sequence[Message]) -> uuid.UUID | None:
    for m in reversed(recent):
        if m.persona_id is not None:
            return m.persona_id
    return None
