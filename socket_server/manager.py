"""The Socket.IO client manager that carries emits between server nodes through Redis,
with the clean shutdown python-socketio's own manager lacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import socketio
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """Emits reach this node's clients first (python-socketio does that), then Redis. While
    Redis is down, publishing is skipped for a few seconds after each failure instead of
    retrying per token: local clients keep chatting, other nodes miss those events."""

    _retry_after_s = 2.0
    _down_until = 0.0

    async def _publish(self, data: object) -> object:
        now = time.monotonic()
        if now < self._down_until:
            return None
        try:
            async with asyncio.timeout(2.0):
                if not self.connected:
                    self._redis_connect()
                return await self.redis.publish(self.channel, self.json.dumps(data))
        except (RedisError, OSError, TimeoutError) as exc:
            self.connected = False
            self._down_until = now + self._retry_after_s
            log.warning("socket.io: cannot publish to redis (%s); other nodes miss events", exc)
            return None

    async def aclose(self) -> None:
        """Stop listening and close the Redis connections, within a few seconds."""
        thread = getattr(self, "thread", None)
        if isinstance(thread, asyncio.Task):
            thread.cancel()
            # a cancel can land where redis-py holds it until a read returns: closing the
            # connections below ends that read, so the wait is bounded
            await asyncio.wait({thread}, timeout=1.0)
        for client in (self.pubsub, self.redis):
            if client is not None:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await client.aclose()
        if isinstance(thread, asyncio.Task) and not thread.done():
            await asyncio.wait({thread}, timeout=2.0)


RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})


class ChatServer(socketio.AsyncServer):  # type: ignore[misc]
    """Refuses client events that are not plain names: a client that emits ``connect``
    or ``disconnect`` (or a number) must not reach those handlers, but get
    ``unknown_event`` like any other name the protocol lacks."""

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: object,
                            data: list[object]) -> object:
        if data and (not isinstance(data[0], str) or data[0] in RESERVED_EVENTS):
            data = [f"<{str(data[0])[:40]}>", *data[1:]]
        return await super()._handle_event(eio_sid, namespace, id, data)
