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
    """Emits reach this node's clients first (python-socketio does that), then Redis.

    A node alone on the channel does not publish: Redis would only echo every emit back
    to the node itself, which parses and drops it. ``PUBLISH`` tells how many nodes
    listen, so a node learns it is alone from its own publishes (and re-checks every
    ``solo_recheck_s``); a node that subscribes announces itself at once, so the others
    resume publishing before its clients can join a room.

    While Redis is down, publishing is skipped for a few seconds after each failure
    instead of retrying per token: local clients keep chatting, other nodes miss those
    events."""

    _retry_after_s = 2.0
    _down_until = 0.0
    solo_recheck_s = 1.0
    _solo = False
    _solo_checked = 0.0
    _subscribed = False
    skipped = 0  # publishes not made because no other node listened

    async def _publish(self, data: object) -> object:
        now = time.monotonic()
        if now < self._down_until:
            return None
        if self._solo and now - self._solo_checked < self.solo_recheck_s:
            self.skipped += 1
            return None
        try:
            async with asyncio.timeout(2.0):
                if not self.connected:
                    self._redis_connect()
                receivers = await self.redis.publish(self.channel, self.json.dumps(data))
        except (RedisError, OSError, TimeoutError) as exc:
            self.connected = False
            self._down_until = now + self._retry_after_s
            log.warning("socket.io: cannot publish to redis (%s); other nodes miss events", exc)
            return None
        own = 1 if self._subscribed else 0
        self._solo = isinstance(receivers, int) and receivers <= own
        self._solo_checked = now
        return receivers

    def _peer_seen(self) -> None:
        self._solo = False
        self._solo_checked = time.monotonic()

    async def _listen(self) -> AsyncIterator[object]:
        # python-socketio's loop parses each message itself; parsing here instead lets a
        # message from another node end solo mode, and drops the announcements
        channel = self.channel.encode("utf-8")
        async for message in self._redis_listen_with_retries():
            if (
                not isinstance(message, dict)
                or message.get("channel") != channel
                or message.get("type") != "message"
                or "data" not in message
            ):
                continue
            try:
                data = self.json.loads(message["data"])
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            if data.get("host_id") != self.host_id:
                self._peer_seen()
            if data.get("method") == "hello":
                continue
            yield data

    async def _announce(self) -> None:
        """Tell nodes already on the channel that one more listens."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self.redis.publish(
                    self.channel, self.json.dumps({"method": "hello", "host_id": self.host_id})
                )

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
                    subscribed = self._subscribed = True
                    delay = 1.0
                    self._peer_seen()  # learn afresh whether this node is alone
                    await self._announce()
                async for message in self.pubsub.listen():
                    yield message
                subscribed = self._subscribed = False  # gone without an error
            except (RedisError, OSError) as exc:
                if self._closing:
                    break
                log.warning("socket.io: cannot receive from redis (%s); retrying", exc)
                subscribed = self._subscribed = False
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

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: object, data: list[object]
    ) -> object:
        if data and (not isinstance(data[0], str) or data[0] in RESERVED_EVENTS):
            data = [f"<{str(data[0])[:40]}>", *data[1:]]
        return await super()._handle_event(eio_sid, namespace, id, data)
