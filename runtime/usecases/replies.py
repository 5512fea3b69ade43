"""Send a message and wait for its replies: for interfaces that answer a call with the
whole reply (an MCP tool call) rather than streaming events to a room. The turn runs as
for any send (the chat service: ownership, limits, the message stored once, the turn in
the background, in order per session); the caller may follow the reply's text as it is
written and gets every persona's stored reply once the turn is over, memories written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from agents.tracker import TraitUpdate
from agents.types import TurnEvents
from memory.record.transcripts import Message
from personas import Persona
from runtime.errors import ChatError
from runtime.infra.auth import Principal, speaker_name
from runtime.usecases.chat import ChatService

TURN_GRACE_S = 30.0
"""Beyond the model's own timeout, for the turn's other steps (recall, memories)."""

Progress = Callable[[str, int], Awaitable[None]]
"""Told the text of the reply being written so far and the characters written in all."""


@dataclass(frozen=True, slots=True)
class Reply:
    persona: Persona
    message: Message


@dataclass(frozen=True, slots=True)
class Failure:
    persona: Persona | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The user's stored message and what the turn gave: the replies in the order they
    were stored, and the failures (a persona whose turn failed, or the whole turn)."""

    message: Message
    replies: tuple[Reply, ...]
    failures: tuple[Failure, ...]


@dataclass
class _Gathered:
    """A turn's events kept for one caller (and passed on to ``also``, the session's
    room when the transport has one)."""

    also: TurnEvents | None
    replies: list[Reply] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    streaming: str = ""
    written: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        self.streaming = ""
        if self.also is not None:
            await self.also.started(persona, reply_id)

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        self.streaming += delta
        self.written += len(delta)
        self.changed.set()
        if self.also is not None:
            await self.also.token(persona, reply_id, delta)

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        self.replies.append(Reply(persona, message))
        self.changed.set()
        if self.also is not None:
            await self.also.done(persona, message, timings)

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        self.failures.append(Failure(persona, code, message))
        self.changed.set()
        if self.also is not None:
            await self.also.failed(persona, code, message)

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        if self.also is not None:
            await self.also.traits(persona, update)


async def ask(
    chat: ChatService,
    principal: Principal,
    *,
    session_id: uuid.UUID,
    text: str,
    progress: Progress | None = None,
    also: TurnEvents | None = None,
) -> Answer:
    """Send ``text`` into one of the caller's sessions and wait for the turn: the
    replies of every persona that answers. ``progress`` hears the reply as it is written
    (called from this task, so a slow listener never holds up the turn; calls coalesce
    while it is busy). Raises :class:`ChatError` when the message is refused, no persona
    answered (with the first failure's code), or the turn outlasts the model's timeout."""
    gathered = _Gathered(also)
    sent = await chat.send(
        principal,
        user_name=speaker_name(principal.user_id),
        session_id=session_id,
        text=text,
        client_msg_id=f"ask:{uuid.uuid4().hex}",
        events=gathered,
    )
    timeout_s = chat.services.settings.llm_timeout_s + TURN_GRACE_S
    over = asyncio.ensure_future(chat.wait_for_turn(sent.message.id, timeout_s))
    reported = 0
    try:
        while not over.done():
            news = asyncio.ensure_future(gathered.changed.wait())
            try:
                await asyncio.wait({over, news}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                news.cancel()
            gathered.changed.clear()
            if progress is not None and gathered.written > reported:
                reported = gathered.written
                await progress(gathered.streaming, reported)
    finally:
        over.cancel()
    if not over.result():
        raise ChatError(
            "timeout",
            f"no reply within {timeout_s:g} s; the turn goes on and its reply will be "
            f"stored in session '{session_id}'",
        )
    if not gathered.replies and gathered.failures:
        first = gathered.failures[0]
        raise ChatError(first.code, first.message)
    return Answer(sent.message, tuple(gathered.replies), tuple(gathered.failures))
