"""Turn events as Socket.IO emits to a session's room, on every node. The events that
come once a reply are views of :mod:`runtime.views`; ``message.token``, sent many times
a reply, is a plain dict built once per token."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any

import socketio

from agents.tracker import TraitUpdate
from memory.record.transcripts import Message
from personas import Persona
from runtime.views import MessageView, PersonaRef, TraitsUpdated

log = logging.getLogger(__name__)
NAMESPACE = "/chat"


def room(session_id: uuid.UUID | str) -> str:
    return f"session:{session_id}"


def room_session(name: str) -> uuid.UUID:
    """The session a room (:func:`room`) is for."""
    return uuid.UUID(name.removeprefix("session:"))


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
                "persona": PersonaRef.of(persona).wire(),
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
        view = MessageView.of(message, timings).wire()
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
        view = TraitsUpdated.of(self._session, str(persona.id), update)
        await self._emit("persona.traits_updated", view.wire())

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        await self._sio.emit(event, data, room=self._room, namespace=NAMESPACE)
