"""``PERSONAE_WORKERS=2``: one port, two worker processes, one shared vector store."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import socketio

from personas import Actor
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


async def until(check: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)


async def chat(url: str, token: str, n: int) -> tuple[str, list[str]]:
    """One client: start a session, send a message, wait for the reply; returns the
    session id and the ids of the stored messages it saw."""
    sio = socketio.AsyncClient(reconnection=False)
    done = asyncio.Event()
    seen: list[str] = []

    async def on_done(data: Any) -> None:
        seen.append(data["message"]["id"])
        done.set()

    sio.on("message.done", on_done, namespace="/chat")
    await sio.connect(
        url,
        namespaces=["/chat"],
        auth={"token": token},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        started = await sio.call("session.start", {"personas": ["tutor"]}, namespace="/chat")
        sid = started["session"]["id"]
        ack = await sio.call(
            "message.send",
            {"session_id": sid, "text": f"I play the oboe, says client {n}", "client_msg_id": "m"},
            namespace="/chat",
        )
        assert ack["ok"], ack
        seen.append(ack["message"]["id"])
        await asyncio.wait_for(done.wait(), 30)
        return sid, seen
    finally:
        await sio.disconnect()


@pytest.mark.slow
async def test_two_workers_share_the_port_the_store_and_stop_together(
    spawn: Any, server: Server
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    proc, url = await spawn("workers", PERSONAE_WORKERS="2")
    workers = children(proc.pid)
    assert len(workers) == 2
    results = await asyncio.gather(*(chat(url, server.token(f"u{n}"), n) for n in range(8)))
    # every turn's memories are in the one store, whichever worker served it
    lister = socketio.AsyncClient(reconnection=False)
    await lister.connect(
        url,
        namespaces=["/chat"],
        auth={"token": server.token("root", "admin")},
        transports=["websocket"],
    )
    for n, (sid, _) in enumerate(results):
        page = await lister.call(
            "memory.list",
            {"persona": "tutor", "session_id": sid, "user": f"u{n}"},
            namespace="/chat",
        )
        assert {m["speaker"]["role"] for m in page["memories"]} == {"user", "persona"}, page
    await lister.disconnect()

    # long-polling cannot be spread over processes: refused, not half-served
    polling = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await polling.connect(
            url,
            namespaces=["/chat"],
            auth={"token": server.token("u0")},
            transports=["polling"],
            wait_timeout=5,
        )

    # a worker that dies is replaced, and chats go on
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    await until(lambda: len(children(proc.pid) - {victim}) == 2)
    await asyncio.gather(*(chat(url, server.token(f"u{n}"), n) for n in range(8, 12)))

    live = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0
    for pid in live:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"worker {pid} outlived"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


async def test_a_worker_stops_when_its_supervisor_is_killed(spawn: Any, server: Server) -> None:
    proc, _ = await spawn("orphans", PERSONAE_WORKERS="2", PERSONAE_SHUTDOWN_GRACE_S="1")
    workers = children(proc.pid)
    assert len(workers) == 2
    proc.kill()
    await asyncio.to_thread(proc.wait, 10)
    await until(lambda: all(not Path(f"/proc/{w}").exists() or _zombie(w) for w in workers))


async def test_metrics_are_the_sum_over_every_worker(spawn: Any, server: Server) -> None:
    import aiohttp

    await server.services.personas.create(definition("tutor"), ADMIN)
    proc, url = await spawn("summed", PERSONAE_WORKERS="2")
    chats = 6
    await asyncio.gather(*(chat(url, server.token(f"m{n}"), n) for n in range(chats)))
    headers = {"Authorization": f"Bearer {server.token('root', 'admin')}"}

    async def turns() -> float:
        # a new connection each time: the kernel picks the worker that answers
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(url + "/metrics", headers=headers) as response,
        ):
            assert response.status == 200
            for line in (await response.text()).splitlines():
                if line.startswith('personae_turns_total{status="complete"}'):
                    return float(line.split()[-1])
        return 0.0

    # the last turns' counts land just after their replies
    await until_async(lambda: turns(), chats)
    readings = [await turns() for _ in range(8)]
    assert readings == [float(chats)] * 8, readings
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0


async def until_async(probe: Any, wanted: float, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while await probe() != wanted:
            await asyncio.sleep(0.1)
