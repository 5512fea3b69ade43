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
        """Stop listening and close the Redis connections."""
        thread = getattr(self, "thread", None)
        if isinstance(thread, asyncio.Task):
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await thread
        if self.pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.pubsub.aclose()
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.aclose()
