"""An emit reaches this node's clients in order, skips a client that went away, and does
not give the event loop away on the way (a reply's first token waits for no other
task)."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

from engineio.exceptions import SocketIsClosedError
from socketio import packet

from socket_server.manager import InlineDelivery

NAMESPACE = "/chat"


class Server:
    """Stands in for the Socket.IO server: records the packets queued per client."""

    packet_class = packet.Packet

    def __init__(self, gone: set[str]) -> None:
        self.gone = gone
        self.sent: list[tuple[str, Any]] = []
        ids = itertools.count()
        self.eio = SimpleNamespace(generate_id=lambda: f"sid{next(ids)}")

    async def _send_eio_packet(self, eio_sid: str, pkt: Any) -> None:
        if eio_sid in self.gone:
            raise SocketIsClosedError()
        self.sent.append((eio_sid, pkt.data))


async def manager_with(clients: list[str], gone: set[str]) -> tuple[InlineDelivery, Server]:
    manager = InlineDelivery()
    server = Server(gone)
    manager.set_server(server)
    manager.initialize()
    for eio_sid in clients:
        sid = await manager.connect(eio_sid, NAMESPACE)
        await manager.enter_room(sid, NAMESPACE, "session:1")
    return manager, server


async def test_every_client_in_the_room_gets_each_emit_in_order() -> None:
    manager, server = await manager_with(["a", "b", "c"], gone={"b"})
    await manager.emit("message.token", {"delta": "Hel"}, NAMESPACE, room="session:1")
    await manager.emit("message.token", {"delta": "lo"}, NAMESPACE, room="session:1")
    received = {eio: [d for e, d in server.sent if e == eio] for eio in ("a", "b", "c")}
    assert received["b"] == []  # gone, and the others still got theirs
    assert received["a"] == received["c"]
    assert [d for d in received["a"]] == [
        '2/chat,["message.token",{"delta":"Hel"}]',
        '2/chat,["message.token",{"delta":"lo"}]',
    ]


async def test_an_emit_does_not_yield_to_other_tasks() -> None:
    manager, server = await manager_with(["a", "b"], gone=set())
    others_ran = asyncio.Event()
    other = asyncio.create_task(asyncio.sleep(0))
    other.add_done_callback(lambda _: others_ran.set())
    await manager.emit("message.started", {"id": 1}, NAMESPACE, room="session:1")
    assert len(server.sent) == 2 and not others_ran.is_set()
    await other


async def test_skip_sid_and_an_empty_room_send_nothing() -> None:
    manager, server = await manager_with(["a"], gone=set())
    sid = manager.sid_from_eio_sid("a", NAMESPACE)
    await manager.emit("typing", {}, NAMESPACE, room="session:1", skip_sid=sid)
    await manager.emit("typing", {}, NAMESPACE, room="session:2")
    assert server.sent == []
