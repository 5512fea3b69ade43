"""The ``/chat`` Socket.IO namespace: authenticate, validate, call the chat service, ack
``{ok, ...}`` or ``{ok: false, error: {code, message}}``, and emit turn events to rooms."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import socketio
from pydantic import BaseModel

from agents.types import NullEvents
from memory.record.transcripts import Message
from personas import Persona
from runtime.infra.auth import AuthError, Principal, verify_token
from runtime.usecases.chat import ChatService
from runtime.views import (
    FactEnvelope,
    FactList,
    FactView,
    LegacyReply,
    MemoryEnvelope,
    MemoryPage,
    MemoryResults,
    MemoryView,
    MessagePage,
    MessageRetried,
    MessageSent,
    MessageView,
    PersonaTraits,
    ScoredMemoryView,
    SessionStarted,
    SessionView,
)
from socket_server import payloads as p
from socket_server.auth import bearer_token
from socket_server.errors import ClientError, error_payload
from socket_server.room_events import NAMESPACE, RoomEvents, room, room_session

log = logging.getLogger(__name__)
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
"""A user id the web page may choose when no secret is set."""

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    unused_grace_s = 30.0
    """How long a session a connection started and left unused outlives the connection:
    a reloaded page, or one that reconnects, rejoins it within that time and keeps it."""

    def __init__(self, chat: Callable[[], ChatService], secret: Callable[[], str | None]) -> None:
        super().__init__(NAMESPACE)
        self._chat = chat
        self._secret = secret
        self._handlers: dict[str, tuple[type[BaseModel], Handler]] = {
            "session.start": (p.SessionStart, self._session_start),
            "session.history": (p.SessionHistory, self._session_history),
            "session.leave": (p.SessionRef, self._session_leave),
            "message.send": (p.MessageSend, self._message_send),
            "message.retry": (p.MessageRetry, self._message_retry),
            "typing": (p.Typing, self._typing),
            "memory.list": (p.MemoryList, self._memory_list),
            "memory.search": (p.MemorySearch, self._memory_search),
            "memory.delete": (p.MemoryRef, self._memory_delete),
            "memory.pin": (p.MemoryPin, self._memory_pin),
            "fact.list": (p.FactsOf, self._fact_list),
            "fact.correct": (p.FactCorrection, self._fact_correct),
            "fact.delete": (p.FactRef, self._fact_delete),
            "persona.traits": (p.PersonaTraits, self._persona_traits),
            "chat_message": (p.LegacyChat, self._legacy_chat),
        }
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._joined: dict[str, OrderedDict[str, None]] = {}  # sid -> rooms, oldest first
        # room -> how many connections of this process follow it: when the last one
        # leaves (or disconnects), the session ended, and its summary is written at once
        self._members: dict[str, int] = {}
        # sid -> who, and the new sessions it started: each is deleted when the
        # connection leaves it with nothing said in it (at once for session.leave, after
        # unused_grace_s for a lost connection, unless a rejoin takes it over first)
        self._started: dict[str, tuple[Principal, set[uuid.UUID]]] = {}
        self._unused: dict[uuid.UUID, tuple[Principal, asyncio.TimerHandle]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # connection -------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("token")
        if not isinstance(token, str):
            header = environ.get("HTTP_AUTHORIZATION")
            token = bearer_token(header if isinstance(header, str) else None)
        try:
            principal = verify_token(self._secret(), token)
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc), {"code": "unauthorized", "message": str(exc)}
            ) from None
        chosen = auth.get("user")
        if self._secret() is None and isinstance(chosen, str) and _USER.fullmatch(chosen):
            # no secret: everyone is the local admin, who may say which user they are
            principal = Principal(chosen, principal.role)
        try:
            name = p.display_name(auth.get("name"))
        except (TypeError, ValueError) as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc), {"code": "invalid_payload", "message": str(exc)}
            ) from None
        if name is None:
            name = principal.user_id if principal.user_id != "local" else "You"
        await self.save_session(
            sid, {"principal": principal, "name": name, "legacy": {}}, namespace=NAMESPACE
        )
        if principal.expires_at is not None:
            # the connection ends when its token does (calls after it are refused too)
            self._expiry[sid] = asyncio.get_running_loop().call_later(
                max(0.0, principal.expires_at - time.time()), self._expire, sid
            )
        self._chat().metrics.connections.inc()
        log.info("connected sid=%s user=%s", sid, principal.user_id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        for name in self._joined.pop(sid, None) or ():
            self._left(name, ended=True)
        started = self._started.pop(sid, None)
        if started is not None:
            loop = asyncio.get_running_loop()
            for session_id in started[1]:
                later = loop.call_later(self.unused_grace_s, self._discard_later, session_id)
                self._unused[session_id] = (started[0], later)
        timer = self._expiry.pop(sid, None)
        if timer is not None:
            timer.cancel()
        self._chat().metrics.connections.dec()
        log.info("disconnected sid=%s", sid)

    def _discard_later(self, session_id: uuid.UUID) -> None:
        principal, _ = self._unused.pop(session_id)
        task = asyncio.create_task(
            self._discard_if_unused(principal, session_id), name=f"unused-session-{session_id}"
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _expire(self, sid: str) -> None:
        self._expiry.pop(sid, None)
        log.info("token expired: disconnecting sid=%s", sid)
        task = asyncio.create_task(self.disconnect(sid, namespace=NAMESPACE), name=f"expire-{sid}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid = args[0]
        data = args[1] if len(args) > 1 else None
        chat = self._chat()
        chat.metrics.events.labels(event=event if event in self._handlers else "unknown").inc()
        entry = self._handlers.get(event)
        try:
            if self._secret() is not None:
                principal, _, _ = await self._who(sid)
                if principal.expired():
                    self._expire(sid)
                    raise ClientError("unauthorized", "token expired; connect with a new one")
            if entry is None:
                raise ClientError("unknown_event", f"unknown event {event[:60]!r}")
            model, handler = entry
            if not isinstance(data, dict):
                raise ClientError("invalid_payload", "payload: expected a JSON object")
            nul = p.find_nul(data)
            if nul is not None:
                raise ClientError("invalid_payload", f"{nul}: must not contain NUL characters")
            payload = model.model_validate(data)
            result = await handler(sid, payload)
            return {"ok": True, **result}
        except Exception as exc:  # noqa: BLE001  (every failure becomes an error ack)
            error = error_payload(exc, where=f"event {event!r} sid={sid}")
        chat.metrics.client_errors.labels(code=error["code"]).inc()
        return {"ok": False, "error": error}

    async def _who(self, sid: str) -> tuple[Principal, str, dict[str, Any]]:
        data = await self.get_session(sid, namespace=NAMESPACE)
        return data["principal"], data["name"], data

    # sessions -----------------------------------------------------------------------------

    async def _session_start(self, sid: str, payload: p.SessionStart) -> dict[str, Any]:
        principal, name, _ = await self._who(sid)
        session, personas = await self._chat().start_session(
            principal,
            payload.personas,
            session_id=payload.session_id,
            policy=payload.policy,
            title=payload.title,
            rounds=payload.rounds,
        )
        await self._join(sid, session.id)
        unused = self._unused.pop(session.id, None)
        if unused is not None:  # rejoined in time: this connection decides now
            unused[1].cancel()
        if payload.session_id is None or unused is not None:
            self._started.setdefault(sid, (principal, set()))[1].add(session.id)
        chat = self._chat()
        page = await chat.history(principal, session.id, before=None, limit=50)
        if payload.session_id is not None and chat.services.settings.answer_on_rejoin:
            await chat.answer_unanswered(
                principal,
                user_name=name,
                session=session,
                recent=page.items,
                events=RoomEvents(self.server, session.id),
            )
        return SessionStarted(
            session=SessionView.of(session, personas),
            history=[MessageView.of(m) for m in page.items],
            before=page.before,
        ).wire()

    async def _session_history(self, sid: str, payload: p.SessionHistory) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        page = await self._chat().history(
            principal, payload.session_id, before=payload.before, limit=payload.limit
        )
        return MessagePage(
            messages=[MessageView.of(m) for m in page.items], before=page.before
        ).wire()

    async def _session_leave(self, sid: str, payload: p.SessionRef) -> dict[str, Any]:
        joined = self._joined.get(sid)
        name = room(payload.session_id)
        if joined is not None and name in joined:
            del joined[name]
            self._left(name, ended=True)
        await self.leave_room(sid, name, namespace=NAMESPACE)
        principal, started = self._started.get(sid, (None, set()))
        if principal is not None and payload.session_id in started:
            started.discard(payload.session_id)
            await self._discard_if_unused(principal, payload.session_id)
        return {}

    async def _discard_if_unused(self, principal: Principal, session_id: uuid.UUID) -> None:
        """A session this connection started and left with nothing said in it goes."""
        try:
            await self._chat().discard_if_unused(principal, session_id)
        except Exception as exc:  # noqa: BLE001 (a leave never fails for it)
            log.warning(
                "unused session %s not deleted: %s: %s", session_id, type(exc).__name__, exc
            )

    async def _join(self, sid: str, session_id: uuid.UUID) -> None:
        """Follow the session's room; past the per-connection limit, stop following the
        one joined longest ago (its transcript is still there to read)."""
        name = room(session_id)
        joined = self._joined.setdefault(sid, OrderedDict())
        if name in joined:
            joined.move_to_end(name)
            return
        limit = self._chat().services.settings.max_rooms_per_connection
        while len(joined) >= limit:
            oldest, _ = joined.popitem(last=False)
            self._left(oldest, ended=False)  # dropped past the limit: not ended
            await self.leave_room(sid, oldest, namespace=NAMESPACE)
        await self.enter_room(sid, name, namespace=NAMESPACE)
        joined[name] = None
        self._members[name] = self._members.get(name, 0) + 1

    def _left(self, name: str, *, ended: bool) -> None:
        """A connection stopped following a session's room; when it was the last one
        of this process and ``ended``, the session is marked ended in the background
        (one statement; a session followed on another node is marked too, and only
        summarised early: later messages are summarised again)."""
        count = self._members.get(name, 0) - 1
        if count > 0:
            self._members[name] = count
            return
        self._members.pop(name, None)
        if not ended:
            return
        session_id = room_session(name)
        task = asyncio.create_task(
            self._chat().end_session(session_id), name=f"session-ended-{session_id}"
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # messages -----------------------------------------------------------------------------

    async def _message_send(self, sid: str, payload: p.MessageSend) -> dict[str, Any]:
        principal, name, _ = await self._who(sid)
        chat = self._chat()

        async def join(session_id: uuid.UUID) -> None:
            # a tab that sends into a session it has not joined joins it (and sees the
            # reply); send calls this once the session is known to be the caller's
            await self._join(sid, session_id)

        sent = await chat.send(
            principal,
            user_name=name,
            session_id=payload.session_id,
            text=payload.text,
            client_msg_id=payload.client_msg_id,
            to=payload.to,
            mode=payload.mode,
            channel=payload.channel,
            events=RoomEvents(self.server, payload.session_id),
            on_accepted=join,
        )
        return MessageSent(message=MessageView.of(sent.message), duplicate=sent.duplicate).wire()

    async def _message_retry(self, sid: str, payload: p.MessageRetry) -> dict[str, Any]:
        principal, name, _ = await self._who(sid)

        async def join(session_id: uuid.UUID) -> None:
            await self._join(sid, session_id)

        message = await self._chat().retry(
            principal,
            user_name=name,
            session_id=payload.session_id,
            message_id=payload.message_id,
            events=RoomEvents(self.server, payload.session_id),
            on_accepted=join,
        )
        return MessageRetried(message=MessageView.of(message)).wire()

    async def _typing(self, sid: str, payload: p.Typing) -> dict[str, Any]:
        principal, name, _ = await self._who(sid)
        await self._chat().session_for(principal, payload.session_id)
        await self.emit(
            "typing",
            {"session_id": str(payload.session_id), "user": name, "is_typing": payload.is_typing},
            room=room(payload.session_id),
            skip_sid=sid,
            namespace=NAMESPACE,
        )
        return {}

    # memory and traits ----------------------------------------------------------------------

    async def _memory_list(self, sid: str, payload: p.MemoryList) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        page = await self._chat().inspection.list_memories(
            principal,
            payload.persona,
            session_id=payload.session_id,
            kind=payload.kind,
            user=payload.user,
            limit=payload.limit,
            cursor=payload.cursor,
        )
        return MemoryPage.of(page).wire()

    async def _memory_search(self, sid: str, payload: p.MemorySearch) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        found = await self._chat().inspection.search_memories(
            principal,
            payload.persona,
            payload.query,
            k=payload.k,
            session_id=payload.session_id,
            user=payload.user,
        )
        return MemoryResults(results=[ScoredMemoryView.of(m) for m in found]).wire()

    async def _memory_delete(self, sid: str, payload: p.MemoryRef) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        await self._chat().inspection.delete_memory(
            principal, payload.persona, payload.memory_id, user=payload.user
        )
        return {}

    async def _memory_pin(self, sid: str, payload: p.MemoryPin) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        record = await self._chat().inspection.pin_memory(
            principal, payload.persona, payload.memory_id, payload.pinned, user=payload.user
        )
        return MemoryEnvelope(memory=MemoryView.of(record)).wire()

    async def _fact_list(self, sid: str, payload: p.FactsOf) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        found = await self._chat().facts.list(principal, payload.persona, user=payload.user)
        return FactList(facts=[FactView.of(f) for f in found]).wire()

    async def _fact_correct(self, sid: str, payload: p.FactCorrection) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        fact = await self._chat().facts.correct(
            principal, payload.persona, payload.fact_id, payload.text, user=payload.user
        )
        return FactEnvelope(fact=FactView.of(fact)).wire()

    async def _fact_delete(self, sid: str, payload: p.FactRef) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        await self._chat().facts.delete(
            principal, payload.persona, payload.fact_id, user=payload.user
        )
        return {}

    async def _persona_traits(self, sid: str, payload: p.PersonaTraits) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        view = await self._chat().traits(principal, payload.persona, payload.session_id)
        return PersonaTraits.of(view).wire()

    # legacy ---------------------------------------------------------------------------------

    async def _legacy_chat(self, sid: str, payload: p.LegacyChat) -> dict[str, Any]:
        principal, name, data = await self._who(sid)
        chat = self._chat()
        persona = await chat.services.personas.get(payload.persona_id)
        sessions: dict[str, str] = data["legacy"]
        session_id = sessions.get(str(persona.id))
        if session_id is None:
            session, _ = await chat.start_session(principal, [str(persona.id)])
            session_id = sessions[str(persona.id)] = str(session.id)
            await self.save_session(sid, data, namespace=NAMESPACE)
        events = LegacyEvents(self, sid, payload.persona_id, session_id)
        sent = await chat.send(
            principal,
            user_name=name,
            session_id=uuid.UUID(session_id),
            text=payload.message,
            client_msg_id=uuid.uuid4().hex,
            events=events,
        )
        return LegacyReply.model_validate(
            {"sessionId": session_id, "message": MessageView.of(sent.message)}
        ).wire()


class LegacyEvents(NullEvents):
    """The legacy alias answers once, with ``ai_response``, when the reply is complete."""

    def __init__(self, ns: ChatNamespace, sid: str, persona_key: str, session_id: str) -> None:
        self._ns = ns
        self._sid = sid
        self._persona_key = persona_key
        self._session_id = session_id
        self._answered = False

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        self._answered = True
        await self._ns.emit(
            "ai_response",
            {
                "message": message.text,
                "personaId": self._persona_key,
                "sessionId": self._session_id,
                "messageId": str(message.id),
                "traits": {t.name: t.value for t in persona.traits},
                "status": message.status,
            },
            to=self._sid,
            namespace=NAMESPACE,
        )

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        if self._answered:  # an incomplete reply was already delivered
            return
        await self._ns.emit(
            "ai_response",
            {
                "personaId": self._persona_key,
                "sessionId": self._session_id,
                "error": {"code": code, "message": message},
            },
            to=self._sid,
            namespace=NAMESPACE,
        )
