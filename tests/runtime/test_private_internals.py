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
