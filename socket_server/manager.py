"""The Socket.IO client manager that carries emits between server nodes through Redis,
with the clean shutdown python-socketio's own manager lacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

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

    _closing = False

    async def _redis_listen_with_retries(self) -> AsyncIterator[object]:
        # python-socketio's loop, except that once aclose() has begun it waits to be
        # cancelled instead of reconnecting (upstream reconnects forever and, with the
        # connection gone, its caller can spin logging errors)
        subscribed = False
        delay = 1.0
        while not self._closing:
            try:
                if not subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed = True
                    delay = 1.0
                async for message in self.pubsub.listen():
                    yield message
                subscribed = False  # the connection went away without an error
            except (RedisError, OSError) as exc:
                if self._closing:
                    break
                log.warning("socket.io: cannot receive from redis (%s); retrying", exc)
                subscribed = False
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        await asyncio.Future()  # closing: wait for aclose() to cancel the listener

    async def aclose(self) -> None:
        """Stop listening and close the Redis connections, within a few seconds."""
        self._closing = True
        thread = getattr(self, "thread", None)
        if self.pubsub is not None and self.pubsub.connection is not None:
            # ends the listener's blocking read; it then waits to be cancelled
            with contextlib.suppress(RedisError, OSError):
                await self.pubsub.connection.disconnect(nowait=True)
        if isinstance(thread, asyncio.Task):
            thread.cancel()
            await asyncio.wait({thread}, timeout=2.0)
        for client in (self.pubsub, self.redis):
            if client is not None:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await client.aclose()


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
