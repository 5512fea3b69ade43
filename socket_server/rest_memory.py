"""REST routes of what a user said and what personas remember of them: the caller's
sessions and transcripts, feedback on messages, and memory inspection (list, search
with score breakdown, delete, pin). Users see only their own; admins may pass ``user``."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from memory.record.transcripts import Session
from personas import Persona, PersonaNotFound
from runtime.services import Services
from runtime.usecases.feedback import REASON_PATTERN
from socket_server.app import CHAT, SERVICES
from socket_server.openapi import Route
from socket_server.rest import (
    Key,
    Query,
    json_ok,
    path_key,
    path_uuid,
    principal,
    read_json,
    read_query,
)
from socket_server.rest_quality import adjustment_view
from socket_server.views import ClientError, memory_view, message_view, scored_view, session_view


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


# ---- sessions and feedback -------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.Response:
    query = read_query(request, SessionsQuery)
    who = principal(request)
    if query.user is not None and query.user != who.user_id and not who.is_admin:
        raise ClientError("forbidden", "only an admin may list another user's sessions")
    services = request.app[SERVICES]
    sessions = await services.memory.transcripts.list_sessions(
        query.user or who.user_id, limit=query.limit
    )
    return json_ok(
        {"sessions": [session_view(s, await _participants(services, s)) for s in sessions]}
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
    page = await request.app[CHAT].history(
        principal(request),
        path_uuid(request, "session_id"),
        before=query.before,
        limit=query.limit,
    )
    return json_ok({"messages": [message_view(m) for m in page.items], "before": page.before})


async def message_feedback(request: web.Request) -> web.Response:
    """Rate a message of one of the caller's sessions; a second rating replaces the first."""
    body = await read_json(request, FeedbackBody)
    given = await request.app[CHAT].feedback(
        principal(request),
        path_uuid(request, "message_id"),
        body.rating,
        body.comment,
        body.reason,
    )
    stored = given.feedback
    feedback = {
        "message_id": str(stored.message_id),
        "rating": stored.rating,
        "comment": stored.comment,
        "created_at": stored.created_at.isoformat(),
        "reason": stored.reason,
    }
    return json_ok({"feedback": feedback, "adjusted": adjustment_view(given.adjusted)})


# ---- memories ------------------------------------------------------------------------------


async def memories(request: web.Request) -> web.Response:
    query = read_query(request, MemoriesQuery)
    chat, who, key = request.app[CHAT], principal(request), path_key(request)
    if query.q is not None:
        found = await chat.inspection.search_memories(
            who, key, query.q, k=query.k or 10, session_id=query.session_id, user=query.user
        )
        return json_ok({"results": [scored_view(m) for m in found]})
    page = await chat.inspection.list_memories(
        who,
        key,
        session_id=query.session_id,
        kind=query.kind,
        user=query.user,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_ok(
        {
            "memories": [memory_view(r) for r in page.records],
            "next_cursor": page.next_cursor,
        }
    )


async def delete_memory(request: web.Request) -> web.Response:
    query = read_query(request, MemoryScope)
    await request.app[CHAT].inspection.delete_memory(
        principal(request), path_key(request), path_uuid(request, "memory_id"), user=query.user
    )
    return web.Response(status=204)


async def pin_memory(request: web.Request) -> web.Response:
    query = read_query(request, MemoryScope)
    memory_id = path_uuid(request, "memory_id")
    body = await read_json(request, PinBody)
    record = await request.app[CHAT].inspection.pin_memory(
        principal(request), path_key(request), memory_id, body.pinned, user=query.user
    )
    return json_ok({"memory": memory_view(record)})


_M = "/api/personas/{key}/memories"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/sessions",
        list_sessions,
        "The caller's sessions, latest first",
        "sessions",
        schema="SessionList",
        query=SessionsQuery,
        errors=(403,),
    ),
    Route(
        "GET",
        "/api/sessions/{session_id}/messages",
        session_messages,
        "A page of a session's transcript, oldest first (owner or admin)",
        "sessions",
        schema="MessagePage",
        query=MessagesQuery,
        errors=(403, 404),
    ),
    Route(
        "POST",
        "/api/messages/{message_id}/feedback",
        message_feedback,
        "Rate a message of one of your sessions (-1, 0, 1); replaces an earlier rating",
        "sessions",
        schema="Feedback",
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
        schema="MemoryListing",
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
        schema="MemoryEnvelope",
        query=MemoryScope,
        body=PinBody,
        errors=(403, 404),
    ),
)
