"""The ``/chat`` Socket.IO namespace: authenticate, validate, call the chat service, ack
``{ok, ...}`` or ``{ok: false, error: {code, message}}``, and emit turn events to rooms."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import socketio
from pydantic import BaseModel

from agents.tracker import TraitUpdate
from agents.types import NullEvents
from memory.transcripts import Message
from personas import Persona
from runtime.auth import AuthError, Principal, verify_token
from runtime.chat import ChatService
from socket_server import payloads as p
from socket_server.views import (
    ClientError,
    drift_view,
    error_payload,
    memory_view,
    message_view,
    persona_ref,
    scored_view,
    session_view,
    timings_view,
    trait_view,
)

log = logging.getLogger(__name__)
NAMESPACE = "/chat"
MAX_NAME = 60
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


def room(session_id: uuid.UUID | str) -> str:
    return f"session:{session_id}"


class RoomEvents:
    """Turn events as Socket.IO emits to the session's room (on every node).

    Tokens are coalesced: a token that comes less than ``coalesce_s`` after the last
    ``message.token`` of this reply went out is held, and whatever arrives meanwhile is
    sent with it as one ``message.token`` when that interval is up. A model that streams
    faster than that would otherwise cost one emit (and, between nodes, one Redis
    publish) per token, while a reader cannot tell 15 ms apart. The first token of a
    reply, and every token of a model slower than that, goes out at once; a held token
    always goes out before the next event of the turn (``message.done`` and the rest)."""

    def __init__(
        self, sio: socketio.AsyncServer, session_id: uuid.UUID, *, coalesce_s: float = 0.015
    ) -> None:
        self._sio = sio
        self._session = str(session_id)
        self._room = room(session_id)
        self._coalesce_s = coalesce_s
        self._held: dict[str, Any] | None = None  # a message.token not sent yet
        self._held_parts: list[str] = []
        self._last_sent = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._ids: tuple[uuid.UUID, str, str] | None = None  # the reply being streamed

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        await self._send_held()
        self._last_sent = -math.inf  # a reply's first token goes out at once
        await self._emit(
            "message.started",
            {
                "session_id": self._session,
                "message_id": str(reply_id),
                "persona": persona_ref(persona),
            },
        )

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        if self._ids is None or self._ids[0] != reply_id:
            # a reply's ids as text, made once rather than per token
            self._ids = (reply_id, str(reply_id), str(persona.id))
        _, message_id, persona_id = self._ids
        if self._held is not None and self._held["message_id"] == message_id:
            self._held_parts.append(delta)  # goes out with the held token
            return
        await self._send_held()
        payload = {
            "session_id": self._session,
            "message_id": message_id,
            "persona_id": persona_id,
            "delta": delta,
        }
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self._coalesce_s - loop.time()
        if wait <= 0:
            self._last_sent = loop.time()
            await self._emit("message.token", payload)
            return
        self._held, self._held_parts = payload, [delta]
        self._timer = loop.call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._flushing = asyncio.create_task(self._flush_on_timer(), name="token-flush")

    async def _flush_on_timer(self) -> None:
        try:
            await self._flush()
        except Exception as exc:  # noqa: BLE001  (nobody awaits a timer's task to hear it)
            log.warning("held tokens of session %s not sent: %s", self._session, exc)

    async def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held["delta"] = "".join(self._held_parts)
            self._held_parts = []
            self._last_sent = asyncio.get_running_loop().time()
            await self._emit("message.token", held)

    async def _send_held(self) -> None:
        """Send a held token now (or let the timer's send finish), so that what the
        turn emits next follows it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await flushing
        await self._flush()

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        await self._send_held()
        view = message_view(message)
        view["timings"] = timings_view(timings)
        await self._emit("message.done", {"session_id": self._session, "message": view})

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        await self._send_held()
        await self._emit(
            "message.error",
            {
                "session_id": self._session,
                "persona_id": str(persona.id) if persona else None,
                "code": code,
                "message": message,
            },
        )

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        await self._send_held()
        await self._emit(
            "persona.traits_updated",
            {
                "session_id": self._session,
                "persona_id": str(persona.id),
                "drift": drift_view(update.session_drift),
                "evolved": [{"name": c.name, "old": c.old, "new": c.new} for c in update.evolved],
            },
        )

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        await self._sio.emit(event, data, room=self._room, namespace=NAMESPACE)


class ChatNamespace(socketio.AsyncNamespace):
    def __init__(self, chat: Callable[[], ChatService], secret: Callable[[], str | None]) -> None:
        super().__init__(NAMESPACE)
        self._chat = chat
        self._secret = secret
        self._handlers: dict[str, tuple[type[BaseModel], Handler]] = {
            "session.start": (p.SessionStart, self._session_start),
            "session.history": (p.SessionHistory, self._session_history),
            "session.leave": (p.SessionRef, self._session_leave),
            "message.send": (p.MessageSend, self._message_send),
            "typing": (p.Typing, self._typing),
            "memory.list": (p.MemoryList, self._memory_list),
            "memory.search": (p.MemorySearch, self._memory_search),
            "memory.delete": (p.MemoryRef, self._memory_delete),
            "memory.pin": (p.MemoryPin, self._memory_pin),
            "persona.traits": (p.PersonaTraits, self._persona_traits),
            "chat_message": (p.LegacyChat, self._legacy_chat),
        }

    # connection -------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("token")
        if not isinstance(token, str):
            token = _bearer(environ)
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
        name = auth.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            name = principal.user_id if principal.user_id != "local" else "You"
        await self.save_session(
            sid, {"principal": principal, "name": name.strip(), "legacy": {}}, namespace=NAMESPACE
        )
        self._chat().metrics.connections.inc()
        log.info("connected sid=%s user=%s", sid, principal.user_id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._chat().metrics.connections.dec()
        log.info("disconnected sid=%s", sid)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid = args[0]
        data = args[1] if len(args) > 1 else None
        chat = self._chat()
        chat.metrics.events.labels(event=event if event in self._handlers else "unknown").inc()
        entry = self._handlers.get(event)
        try:
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
        principal, _, _ = await self._who(sid)
        session, personas = await self._chat().start_session(
            principal,
            payload.personas,
            session_id=payload.session_id,
            policy=payload.policy,
            title=payload.title,
            rounds=payload.rounds,
        )
        await self.enter_room(sid, room(session.id), namespace=NAMESPACE)
        page = await self._chat().history(principal, session.id, before=None, limit=50)
        return {
            "session": session_view(session, personas),
            "history": [message_view(m) for m in page.items],
            "before": page.before,
        }

    async def _session_history(self, sid: str, payload: p.SessionHistory) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        page = await self._chat().history(
            principal, payload.session_id, before=payload.before, limit=payload.limit
        )
        return {"messages": [message_view(m) for m in page.items], "before": page.before}

    async def _session_leave(self, sid: str, payload: p.SessionRef) -> dict[str, Any]:
        await self.leave_room(sid, room(payload.session_id), namespace=NAMESPACE)
        return {}

    # messages -----------------------------------------------------------------------------

    async def _message_send(self, sid: str, payload: p.MessageSend) -> dict[str, Any]:
        principal, name, _ = await self._who(sid)
        chat = self._chat()

        async def join(session_id: uuid.UUID) -> None:
            # a tab that sends into a session it has not joined joins it (and sees the
            # reply); send calls this once the session is known to be the caller's
            await self.enter_room(sid, room(session_id), namespace=NAMESPACE)

        sent = await chat.send(
            principal,
            user_name=name,
            session_id=payload.session_id,
            text=payload.text,
            client_msg_id=payload.client_msg_id,
            to=payload.to,
            mode=payload.mode,
            events=RoomEvents(self.server, payload.session_id),
            on_accepted=join,
        )
        return {"message": message_view(sent.message), "duplicate": sent.duplicate}

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
        page = await self._chat().list_memories(
            principal,
            payload.persona,
            session_id=payload.session_id,
            kind=payload.kind,
            user=payload.user,
            limit=payload.limit,
            cursor=payload.cursor,
        )
        return {
            "memories": [memory_view(r) for r in page.records],
            "next_cursor": page.next_cursor,
        }

    async def _memory_search(self, sid: str, payload: p.MemorySearch) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        found = await self._chat().search_memories(
            principal,
            payload.persona,
            payload.query,
            k=payload.k,
            session_id=payload.session_id,
            user=payload.user,
        )
        return {"results": [scored_view(m) for m in found]}

    async def _memory_delete(self, sid: str, payload: p.MemoryRef) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        await self._chat().delete_memory(
            principal, payload.persona, payload.memory_id, user=payload.user
        )
        return {}

    async def _memory_pin(self, sid: str, payload: p.MemoryPin) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        record = await self._chat().pin_memory(
            principal, payload.persona, payload.memory_id, payload.pinned, user=payload.user
        )
        return {"memory": memory_view(record)}

    async def _persona_traits(self, sid: str, payload: p.PersonaTraits) -> dict[str, Any]:
        principal, _, _ = await self._who(sid)
        view = await self._chat().traits(principal, payload.persona, payload.session_id)
        return {
            "persona": persona_ref(view.persona),
            "traits": [trait_view(t) for t in view.persona.traits],
            "observed": {
                name: {"mean": round(s.mean, 3), "count": s.count, "last": round(s.last, 3)}
                for name, s in view.observed.stats.items()
            },
            "turns": view.turns,
            "drift": drift_view(view.drift),
        }

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
        return {"sessionId": session_id, "message": message_view(sent.message)}


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


def _bearer(environ: dict[str, Any]) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None
