"""A turn's events as a queue one HTTP request reads (the OpenAI-compatible API answers
from it), passed on to the session's room as well."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from agents.tracker import TraitUpdate
from agents.types import TurnEvents
from memory.record.transcripts import Message
from personas import Persona
from socket_server.errors import error_payload

log = logging.getLogger(__name__)

Event = tuple[Any, ...]


class QueueEvents:
    """Turn events of one persona's reply as a queue the request reads, also emitted to
    the session's room so an open tab of the session sees the reply."""

    def __init__(self, persona_id: uuid.UUID, room: TurnEvents) -> None:
        self._persona_id = persona_id
        self._room = room
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    async def next(self, timeout_s: float) -> Event:
        try:
            async with asyncio.timeout(timeout_s):
                return await self._queue.get()
        except TimeoutError:
            return ("failed", "timeout", f"no reply within {timeout_s:g} s")

    def on_task_done(self, task: asyncio.Task[Any]) -> None:
        """A resent message's turn ended: its failure (over the caller's limits, say)
        reaches the request as that error; an unexpected one is logged with an id."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            payload = error_payload(exc, where="a resent message's turn")
            self._queue.put_nowait(("failed", str(payload["code"]), str(payload["message"])))

    def _ours(self, persona: Persona | None) -> bool:
        return persona is None or persona.id == self._persona_id

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        await self._room.started(persona, reply_id)

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        if self._ours(persona):
            self._queue.put_nowait(("token", delta))
        await self._room.token(persona, reply_id, delta)

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        if self._ours(persona):
            self._queue.put_nowait(("done", message))
        await self._room.done(persona, message, timings)

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        if self._ours(persona):
            self._queue.put_nowait(("failed", code, message))
        await self._room.failed(persona, code, message)

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        await self._room.traits(persona, update)
