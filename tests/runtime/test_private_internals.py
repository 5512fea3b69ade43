"""Upstream internals the project builds on where no public API exists, checked against
the versions it was tested with (pyproject.toml pins those ranges). When one of these
fails after an upgrade, re-read the upstream method, adapt the code named in the
message, and record the new fingerprint."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import socketio
from aiohttp import web_protocol, web_server
from engineio import async_socket
from engineio.async_drivers import aiohttp as engineio_aiohttp
from pgserver import postgres_server
from socketio import async_pubsub_manager, async_redis_manager, async_server


def _fingerprint(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


RELIED_ON: dict[str, tuple[Callable[..., Any], str, str]] = {
    # python-socketio: socket_server/manager.py (RedisManager, ChatServer)
    "AsyncPubSubManager._thread": (
        async_pubsub_manager.AsyncPubSubManager._thread,
        "fa8d075729aac64d",
        "calls _listen() and handles what it yields (RedisManager._listen parses for it)",
    ),
    "AsyncPubSubManager.emit": (
        async_pubsub_manager.AsyncPubSubManager.emit,
        "6cc46e0ff9b6d7cf",
        "ignore_queue keeps an emit on this node (RedisManager.emit)",
    ),
    "AsyncRedisManager._publish": (
        async_redis_manager.AsyncRedisManager._publish,
        "033e4da7cc8768b4",
        "RedisManager._publish replaces it",
    ),
    "AsyncRedisManager._redis_connect": (
        async_redis_manager.AsyncRedisManager._redis_connect,
        "da4530c936323c25",
        "RedisManager calls it to (re)connect",
    ),
    "AsyncRedisManager._redis_listen_with_retries": (
        async_redis_manager.AsyncRedisManager._redis_listen_with_retries,
        "ad347f253fd3423a",
        "RedisManager._redis_listen_with_retries is a modified copy of it",
    ),
    "AsyncRedisManager._listen": (
        async_redis_manager.AsyncRedisManager._listen,
        "3e74fdd1084b4e13",
        "RedisManager._listen replaces it",
    ),
    "AsyncServer._handle_event": (
        async_server.AsyncServer._handle_event,
        "65178105ef8b593d",
        "ChatServer._handle_event checks the packet before it",
    ),
    "AsyncServer._handle_eio_message": (
        async_server.AsyncServer._handle_eio_message,
        "bef50fc0e1635921",
        "ChatServer._guarded_message calls it and logs what it raises",
    ),
    "AsyncServer._handle_eio_connect": (
        async_server.AsyncServer._handle_eio_connect,
        "76704886d944a7e6",
        "ChatServer._handle_eio_connect wraps the new socket's receive and POST handling",
    ),
    # python-engineio: socket_server/manager.py (StrictEngineIO, ChatServer)
    "AsyncSocket.receive": (
        async_socket.AsyncSocket.receive,
        "a91ae36ec2fb5340",
        "logs packet_names[type] before checking the type (ChatServer._strict_receive)",
    ),
    "AsyncSocket.handle_post_request": (
        async_socket.AsyncSocket.handle_post_request,
        "82dca119a261a959",
        "decodes a polling POST's packets and receives them (ChatServer._strict_post)",
    ),
    "AsyncSocket._websocket_handler": (
        async_socket.AsyncSocket._websocket_handler,
        "27f120df4d717a24",
        "decodes each ws.wait() frame outside its try (StrictEngineIO's websocket)",
    ),
    "WebSocket.wait": (
        engineio_aiohttp.WebSocket.wait,
        "992c370917677d39",
        "returns one frame's data; StrictEngineIO's websocket subclasses it",
    ),
    # aiohttp: socket_server/edge.py (ConnectionGuard)
    "Server.connection_made": (
        web_server.Server.connection_made,
        "c57094db35388e6d",
        "called by each handler as it connects; ConnectionGuard wraps it",
    ),
    "Server.connection_lost": (
        web_server.Server.connection_lost,
        "fff3ade6ffe866a8",
        "called by each handler as it goes; ConnectionGuard wraps it",
    ),
    "RequestHandler.connection_made": (
        web_protocol.RequestHandler.connection_made,
        "44d50b5763b2c7e4",
        "arms the keep-alive timer from the start and starts the handler after the manager",
    ),
    "RequestHandler.force_close": (
        web_protocol.RequestHandler.force_close,
        "38d0e1e798e4d3b7",
        "how ConnectionGuard closes one connection too many",
    ),
    # pgserver: runtime/infra/embedded.py (_start_postgres, _stop_postgres, _prune_dead_handles)
    "PostgresServer.__init__": (
        postgres_server.PostgresServer.__init__,
        "19596660919c09e0",
        "registers the instance in _instances and atexit before starting",
    ),
    "PostgresServer._cleanup": (
        postgres_server.PostgresServer._cleanup,
        "8dd63ab271c48054",
        "drops this pid from .handle_pids.json under _lock, deletes from _instances",
    ),
    "PostgresServer.__exit__": (
        postgres_server.PostgresServer.__exit__,
        "bf79c08d3d1f0c39",
        "counts users in _count and cleans up at zero",
    ),
    "PostgresServer.ensure_pgdata_inited": (
        postgres_server.PostgresServer.ensure_pgdata_inited,
        "daf80e363505d376",
        "calls the module's ensure_prefix_permissions, which _start_postgres narrows",
    ),
    "PostgresServer.ensure_postgres_running": (
        postgres_server.PostgresServer.ensure_postgres_running,
        "db9024f948f12b42",
        "calls the module's ensure_prefix_permissions for a socket folder",
    ),
    "get_server": (
        postgres_server.get_server,
        "c94fdd1c4a1fc0f5",
        "returns the cached instance from _instances",
    ),
}


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_upstream_internals_are_the_ones_the_code_was_written_against(name: str) -> None:
    function, expected, why = RELIED_ON[name]
    assert _fingerprint(function) == expected, (
        f"upstream {name} changed ({why}): re-check the code that relies on it"
    )


def test_the_attributes_relied_on_exist() -> None:
    server = postgres_server.PostgresServer
    assert isinstance(server._instances, dict)
    assert hasattr(server, "_lock") and hasattr(server._lock, "acquire")
    manager = socketio.AsyncRedisManager.__init__
    assert "channel" in inspect.signature(manager).parameters
    # python-socketio routes Engine.IO messages through the handler it registers, which
    # ChatServer replaces with its guard by the public ``eio.on``
    plain = socketio.AsyncServer()
    assert plain.eio.handlers["message"] == plain._handle_eio_message
