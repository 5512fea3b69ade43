"""Turn events as room emits: tokens coalesced per interval, nothing held back past the
next event, the first token of every reply sent at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

from memory.record.transcripts import Message
from socket_server.namespace import RoomEvents

SESSION = uuid.uuid4()


class Recorder:
    """Stands in for the Socket.IO server: records what is emitted, and when."""

    def __init__(self, *, token_delay_s: float = 0.0) -> None:
        self.sent: list[tuple[str, dict[str, Any], float]] = []
        self.token_delay_s = token_delay_s

    async def emit(self, event: str, data: dict[str, Any], **_: Any) -> None:
        if event == "message.token" and self.token_delay_s:
            await asyncio.sleep(self.token_delay_s)  # a publish to other nodes is slow
        self.sent.append((event, dict(data), asyncio.get_running_loop().time()))

    def events(self) -> list[str]:
        return [e for e, _, _ in self.sent]

    def deltas(self) -> list[str]:
        return [d["delta"] for e, d, _ in self.sent if e == "message.token"]


def persona(name: str = "Ada") -> Any:
    return SimpleNamespace(id=uuid.uuid4(), slug=name.lower(), name=name)


def message(reply_id: uuid.UUID, text: str) -> Message:
    return Message(
        id=reply_id,
        session_id=SESSION,
        seq=2,
        role="persona",
        persona_id=uuid.uuid4(),
        user_id=None,
        speaker="Ada",
        text=text,
        client_msg_id=None,
        reply_to=uuid.uuid4(),
        status="complete",
        extracted_traits={},
        timings={},
        created_at=dt.datetime.now(dt.UTC),
    )


def events_for(sio: Recorder, coalesce_s: float = 0.05) -> RoomEvents:
    return RoomEvents(sio, SESSION, coalesce_s=coalesce_s)  # type: ignore[arg-type]


async def test_a_burst_of_tokens_is_one_emit_after_the_first_and_precedes_done() -> None:
    sio = Recorder()
    events, ada, reply = events_for(sio), persona(), uuid.uuid4()
    await events.started(ada, reply)
    words = [f" w{i}" for i in range(20)]
    for w in words:
        await events.token(ada, reply, w)
    assert sio.deltas() == [" w0"]  # the first went out at once, the rest are held
    await events.done(ada, message(reply, "".join(words)), {})
    assert sio.events() == ["message.started", "message.token", "message.token", "message.done"]
    assert "".join(sio.deltas()) == "".join(words)


async def test_held_tokens_go_out_when_the_interval_is_up_without_another_event() -> None:
    sio = Recorder()
    events, ada, reply = events_for(sio, 0.05), persona(), uuid.uuid4()
    await events.started(ada, reply)
    for w in ("a", "b", "c"):
        await events.token(ada, reply, w)
    await asyncio.sleep(0.2)  # the model stalls: the held tokens must not wait for it
    assert sio.deltas() == ["a", "bc"]
    (_, _, first), (_, _, second) = [t for t in sio.sent if t[0] == "message.token"]
    assert 0.04 <= second - first < 0.15


async def test_tokens_slower_than_the_interval_each_go_out_at_once() -> None:
    sio = Recorder()
    events, ada, reply = events_for(sio, 0.01), persona(), uuid.uuid4()
    await events.started(ada, reply)
    for w in ("a", "b", "c"):
        await events.token(ada, reply, w)
        assert sio.deltas()[-1] == w  # sent before the model's next token
        await asyncio.sleep(0.03)
    assert sio.deltas() == ["a", "b", "c"]


async def test_a_flush_in_flight_still_precedes_the_next_event() -> None:
    """The interval's send is under way (a slow publish) when the reply ends: done
    waits for it instead of overtaking it."""
    sio = Recorder()
    events, ada, reply = events_for(sio, 0.02), persona(), uuid.uuid4()
    await events.started(ada, reply)
    await events.token(ada, reply, "a")  # sent at once
    await events.token(ada, reply, "b")  # held for 20 ms
    sio.token_delay_s = 0.05  # and its send will take 50 ms
    await asyncio.sleep(0.04)  # the timer fired; its emit is still publishing
    await events.failed(ada, "llm_stream_broken", "the stream broke")
    assert sio.events() == ["message.started", "message.token", "message.token", "message.error"]
    assert sio.deltas() == ["a", "b"]


async def test_every_reply_starts_with_its_own_first_token_at_once() -> None:
    """Two personas answer one message: the second reply's tokens are never merged into
    the first's, and its first token is not held behind the first reply's interval."""
    sio = Recorder()
    events = events_for(sio, 10.0)
    ada, bob = persona("Ada"), persona("Bob")
    first, second = uuid.uuid4(), uuid.uuid4()
    await events.started(ada, first)
    await events.token(ada, first, "x")
    await events.token(ada, first, "y")
    await events.done(ada, message(first, "xy"), {})
    await events.started(bob, second)
    await events.token(bob, second, "z")
    tokens = [(d["message_id"], d["delta"]) for e, d, _ in sio.sent if e == "message.token"]
    assert tokens == [(str(first), "x"), (str(first), "y"), (str(second), "z")]
