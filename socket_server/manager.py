"""The Socket.IO client manager that carries emits between server nodes through Redis,
with the clean shutdown python-socketio's own manager lacks."""

from __future__ import annotations

import asyncio
import contextlib

import socketio
from redis.exceptions import RedisError


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
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
