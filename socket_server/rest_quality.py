"""REST routes of how a persona holds up: quality, analytics per day, the feedback
users gave (an admin sees all, a user their own), and the channel a session's replies
are written for."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field, model_validator

from personas.channels import BUILTIN
from personas.definitions import NAME_PATTERN
from runtime.usecases import quality
from runtime.usecases.feedback import list_feedback
from runtime.views import (
    FeedbackEntry,
    FeedbackList,
    PersonaAnalytics,
    PersonaQuality,
    SessionChannel,
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

MAX_DAYS = 366


class AnalyticsQuery(Query):
    from_: dt.date | None = Field(default=None, alias="from", description="default: 30 days ago")
    to: dt.date | None = Field(default=None, description="default: today (UTC)")

    @model_validator(mode="after")
    def _range(self) -> AnalyticsQuery:
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self


class FeedbackQuery(Query):
    persona: Key | None = Field(default=None, description="only this persona's replies")
    user: Key | None = Field(default=None, description="another user's feedback (admin)")
    limit: int = Field(default=100, ge=1, le=500)


class SessionChannelBody(Body):
    channel: str | None = Field(pattern=NAME_PATTERN, description="null: no channel")


async def persona_quality(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    persona = await services.personas.get(path_key(request))
    return json_view(
        PersonaQuality.of(await quality.quality(services, persona, principal(request)))
    )


async def persona_analytics(request: web.Request) -> web.Response:
    query = read_query(request, AnalyticsQuery)
    services = request.config_dict[SERVICES]
    persona = await services.personas.get(path_key(request))
    until = query.to or dt.datetime.now(dt.UTC).date()
    since = query.from_ or until - dt.timedelta(days=29)
    if since > until:
        raise ClientError("invalid_payload", "from: must not be after to")
    if (until - since).days >= MAX_DAYS:
        raise ClientError("invalid_payload", f"from/to: at most {MAX_DAYS} days at once")
    return json_view(
        PersonaAnalytics.of(
            await quality.analytics(services, persona, since, until, principal(request))
        )
    )


async def feedback(request: web.Request) -> web.Response:
    query = read_query(request, FeedbackQuery)
    who = principal(request)
    if query.user is not None and query.user != who.user_id and not who.is_admin:
        raise ClientError("forbidden", "only an admin may read another user's feedback")
    services = request.config_dict[SERVICES]
    persona_id = None
    if query.persona is not None:
        persona_id = (await services.personas.get(query.persona)).id
    user = query.user or (None if who.is_admin else who.user_id)
    rows = await list_feedback(
        services.pool, user_id=user, persona_id=persona_id, limit=query.limit
    )
    return json_view(FeedbackList(feedback=[FeedbackEntry.of(r) for r in rows]))


async def session_channel(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id")
    body = await read_json(request, SessionChannelBody)
    services = request.config_dict[SERVICES]
    session = await request.config_dict[CHAT].session_for(principal(request), session_id)
    if body.channel is not None and body.channel not in BUILTIN:
        known = False
        for persona_id in session.persona_ids:
            persona = await services.personas.get(persona_id)
            known = known or any(c.name == body.channel for c in persona.channels)
        if not known:
            raise ClientError(
                "invalid_payload",
                f"channel: {body.channel!r} is neither built in nor a channel of this "
                "session's personas",
            )
    await services.memory.transcripts.set_channel(session.id, body.channel)
    return json_view(SessionChannel(session_id=session.id, channel=body.channel))


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/personas/{key}/quality",
        persona_quality,
        "Consistency, linguistic match, channel compliance and satisfaction (0-100) with "
        "the numbers behind them, and the weakest part (editors and admins)",
        "studio",
        response=PersonaQuality,
        errors=(403, 404),
    ),
    Route(
        "GET",
        "/personas/{key}/analytics",
        persona_analytics,
        "Per day: turns, users, sessions, feedback, first-token and turn latency, drift "
        "(editors and admins)",
        "studio",
        response=PersonaAnalytics,
        query=AnalyticsQuery,
        errors=(403, 404),
    ),
    Route(
        "GET",
        "/feedback",
        feedback,
        "Ratings, newest first: an admin sees everyone's, a user their own",
        "sessions",
        response=FeedbackList,
        query=FeedbackQuery,
        errors=(403, 404),
    ),
    Route(
        "PUT",
        "/sessions/{session_id}/channel",
        session_channel,
        "The channel the session's replies are written for (owner or admin)",
        "sessions",
        response=SessionChannel,
        body=SessionChannelBody,
        errors=(403, 404),
    ),
)
