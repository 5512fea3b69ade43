"""REST routes of what a user said and what personas remember of them: the caller's
sessions and transcripts, feedback on messages, and memory inspection (list, search
with score breakdown, delete, pin). Users see only their own; admins may pass ``user``."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, model_validator

from memory.record.transcripts import Session
from personas import Persona, PersonaNotFound
from runtime.services import Services
from runtime.usecases.feedback import REASON_PATTERN
from runtime.views import (
    FactEnvelope,
    FactList,
    FactView,
    FeedbackResult,
    MemoryEnvelope,
    MemoryListing,
    MemoryPage,
    MemoryResults,
    MemoryView,
    MessagePage,
    MessageView,
    ScoredMemoryView,
    SessionList,
    SessionView,
)
from socket_server.auth import principal
from socket_server.errors import ClientError
from socket_server.http_io import (
    Body,
    Key,
    Query,
    json_view,
    path_key,
    path_uuid,
    read_json,
    read_query,
)
from socket_server.keys import CHAT, SERVICES
from socket_server.routes import Route


class SessionsQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    user: Key | None = Field(default=None, description="another user's sessions (admin)")


class MessagesQuery(Query):
    before: int | None = Field(
        default=None, ge=1, le=2**62, description="a seq: messages before it"
    )
    limit: int = Field(default=50, ge=1, le=200)


class FeedbackBody(Body):
    rating: Annotated[int, Field(strict=True, ge=-1, le=1)]
    comment: str = Field(default="", max_length=2_000)
    reason: str | None = Field(
        default=None,
        pattern=REASON_PATTERN,
        description="why (too_long, too_formal, off_character...); see docs/personas.md",
    )


class MemoriesQuery(Query):
    """Without ``q``: a newest-first page (``cursor``, ``limit``, ``kind``). With ``q``:
    the ``k`` best memories by meaning, keywords, recency and importance."""

    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=2_000,
        description="search text; switches to semantic search",
    )
    k: int | None = Field(default=None, ge=1, le=50, description="results of a search (10)")
    session_id: uuid.UUID | None = None
    kind: Literal["turn", "fact", "summary", "reflection"] | None = None
    user: Key | None = Field(default=None, description="another user's memories (admin)")
    cursor: str | None = Field(default=None, min_length=1, max_length=500)
    limit: int = Field(default=50, ge=1, le=200)

    @model_validator(mode="after")
    def _one_mode(self) -> MemoriesQuery:
        if self.q is None and self.k is not None:
            raise ValueError("k applies only to a search (?q=)")
        listing_only = {"cursor", "kind", "limit"} & self.model_fields_set
        if self.q is not None and listing_only:
            raise ValueError(f"{', '.join(sorted(listing_only))}: not with a search (?q=)")
        return self


class MemoryScope(Query):
    user: Key | None = Field(default=None, description="another user's memory (admin)")


class PinBody(Body):
    pinned: Annotated[bool, Field(strict=True)]


class FactsQuery(Query):
    user: Key | None = Field(default=None, description="another user's facts (admin)")


class CorrectBody(Body):
    text: str = Field(
        min_length=1, max_length=500, description="what is true instead, in the third person"
    )


# ---- sessions and feedback -------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.Response:
    query = read_query(request, SessionsQuery)
    who = principal(request)
    if query.user is not None and query.user != who.user_id and not who.is_admin:
        raise ClientError("forbidden", "only an admin may list another user's sessions")
    services = request.config_dict[SERVICES]
    sessions = await services.memory.transcripts.list_sessions(
        query.user or who.user_id, limit=query.limit
    )
    return json_view(
        SessionList(
            sessions=[SessionView.of(s, await _participants(services, s)) for s in sessions]
        )
    )


async def _participants(services: Services, session: Session) -> list[Persona]:
    # a session outlives its personas' soft deletion: list the ones still there
    found = []
    for persona_id in session.persona_ids:
        try:
            found.append(await services.personas.get(persona_id))
        except PersonaNotFound:
            continue
    return found


async def session_messages(request: web.Request) -> web.Response:
    query = read_query(request, MessagesQuery)
    page = await request.config_dict[CHAT].history(
        principal(request),
        path_uuid(request, "session_id"),
        before=query.before,
        limit=query.limit,
    )
    return json_view(
        MessagePage(messages=[MessageView.of(m) for m in page.items], before=page.before)
    )


async def message_feedback(request: web.Request) -> web.Response:
    """Rate a message of one of the caller's sessions; a second rating replaces the first."""
    body = await read_json(request, FeedbackBody)
    given = await request.config_dict[CHAT].feedback(
        principal(request),
        path_uuid(request, "message_id"),
        body.rating,
        body.comment,
        body.reason,
    )
    return json_view(FeedbackResult.of(given))


# ---- memories ------------------------------------------------------------------------------


async def memories(request: web.Request) -> web.Response:
    query = read_query(request, MemoriesQuery)
    chat, who, key = request.config_dict[CHAT], principal(request), path_key(request)
    if query.q is not None:
        found = await chat.inspection.search_memories(
            who, key, query.q, k=query.k or 10, session_id=query.session_id, user=query.user
        )
        return json_view(MemoryResults(results=[ScoredMemoryView.of(m) for m in found]))
    page = await chat.inspection.list_memories(
        who,
        key,
        session_id=query.session_id,
        kind=query.kind,
        user=query.user,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_view(MemoryPage.of(page))


async def delete_memory(request: web.Request) -> web.Response:
    query = read_query(request, MemoryScope)
    await request.config_dict[CHAT].inspection.delete_memory(
        principal(request), path_key(request), path_uuid(request, "memory_id"), user=query.user
    )
    return web.Response(status=204)


async def pin_memory(request: web.Request) -> web.Response:
    query = read_query(request, MemoryScope)
    memory_id = path_uuid(request, "memory_id")
    body = await read_json(request, PinBody)
    record = await request.config_dict[CHAT].inspection.pin_memory(
        principal(request), path_key(request), memory_id, body.pinned, user=query.user
    )
    return json_view(MemoryEnvelope(memory=MemoryView.of(record)))


# ---- facts -----------------------------------------------------------------------------


async def facts(request: web.Request) -> web.Response:
    query = read_query(request, FactsQuery)
    found = await request.config_dict[CHAT].facts.list(
        principal(request), path_key(request), user=query.user
    )
    return json_view(FactList(facts=[FactView.of(f) for f in found]))


async def correct_fact(request: web.Request) -> web.Response:
    query = read_query(request, FactsQuery)
    body = await read_json(request, CorrectBody)
    fact = await request.config_dict[CHAT].facts.correct(
        principal(request),
        path_key(request),
        path_uuid(request, "fact_id"),
        body.text,
        user=query.user,
    )
    return json_view(FactEnvelope(fact=FactView.of(fact)))


async def delete_fact(request: web.Request) -> web.Response:
    query = read_query(request, FactsQuery)
    await request.config_dict[CHAT].facts.delete(
        principal(request), path_key(request), path_uuid(request, "fact_id"), user=query.user
    )
    return web.Response(status=204)


_M = "/personas/{key}/memories"
_F = "/personas/{key}/facts"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/sessions",
        list_sessions,
        "The caller's sessions, latest first",
        "sessions",
        response=SessionList,
        query=SessionsQuery,
        errors=(403,),
    ),
    Route(
        "GET",
        "/sessions/{session_id}/messages",
        session_messages,
        "A page of a session's transcript, oldest first (owner or admin)",
        "sessions",
        response=MessagePage,
        query=MessagesQuery,
        errors=(403, 404),
    ),
    Route(
        "POST",
        "/messages/{message_id}/feedback",
        message_feedback,
        "Rate a message of one of your sessions (-1, 0, 1); replaces an earlier rating",
        "sessions",
        response=FeedbackResult,
        body=FeedbackBody,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _M,
        memories,
        "The caller's memories of a persona: a page, or a search with ?q= "
        "(results carry their score breakdown)",
        "memories",
        response=MemoryListing,
        query=MemoriesQuery,
        errors=(403, 404),
    ),
    Route(
        "DELETE",
        _M + "/{memory_id}",
        delete_memory,
        "Forget one memory",
        "memories",
        status=204,
        query=MemoryScope,
        errors=(403, 404),
    ),
    Route(
        "POST",
        _M + "/{memory_id}/pin",
        pin_memory,
        "Pin or unpin a memory (pinned ones are always candidates)",
        "memories",
        response=MemoryEnvelope,
        query=MemoryScope,
        body=PinBody,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _F,
        facts,
        "What the persona knows about the caller: facts derived from what they said, "
        "current and superseded, with their validity and source messages",
        "memories",
        response=FactList,
        query=FactsQuery,
        errors=(403, 404),
    ),
    Route(
        "POST",
        _F + "/{fact_id}/correct",
        correct_fact,
        "Correct a current fact: the new text supersedes it (kept as history)",
        "memories",
        response=FactEnvelope,
        query=FactsQuery,
        body=CorrectBody,
        errors=(403, 404, 409),
    ),
    Route(
        "DELETE",
        _F + "/{fact_id}",
        delete_fact,
        "Forget a fact",
        "memories",
        status=204,
        query=FactsQuery,
        errors=(403, 404),
    ),
)
