"""The Socket.IO client manager that carries emits between server nodes through Redis,
with the clean shutdown python-socketio's own manager lacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import engineio
import engineio.packet
import socketio
from redis.exceptions import RedisError

from runtime.infra.metrics import Metrics

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
    published = 0
    skipped = 0  # publishes not made because no other node listened
    local_only = 0  # emits kept on this node: no other node has a client in the room
    interest_ttl_s = 7 * 86_400
    rooms_cached = 20_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (namespace, room) -> ids of the nodes with clients in it, read from Redis
        self._hosts: OrderedDict[tuple[str, str], set[str]] = OrderedDict()
        # announcements about rooms not (yet) read from Redis
        self._heard: dict[tuple[str, str], set[str]] = {}
        # rooms this node has told Redis about, and when
        self._registered: dict[tuple[str, str], float] = {}
        self._unregistered: set[tuple[str, str]] = set()

    # room interest ---------------------------------------------------------------------
    #
    # With several nodes, python-socketio publishes every emit, and every node parses it
    # and looks for the room's clients, which are usually all on the emitting node. Each
    # node therefore records in Redis (a set per room, with a TTL) that it has clients in
    # a room, and announces it on the channel; an emit to a room goes to Redis only when
    # another node is recorded there. Records are not removed when clients leave (a
    # stale record costs publishes, never a lost event); they expire after a week
    # unless renewed.

    def _interest_key(self, key: tuple[str, str]) -> str:
        return f"{self.channel}:hosts:{key[0]}:{key[1]}"

    def _has_local(self, namespace: str, room: str) -> bool:
        return bool(self.rooms.get(namespace, {}).get(room))

    async def enter_room(
        self, sid: str, namespace: str, room: str, eio_sid: str | None = None
    ) -> Any:
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if room is None or room == sid or not self._has_local(namespace, room):
            return
        key = (namespace, room)
        registered = self._registered.get(key)
        if registered is None or time.monotonic() - registered > self.interest_ttl_s / 7:
            await self._register(key)

    async def _register(self, key: tuple[str, str]) -> None:
        try:
            async with asyncio.timeout(2.0):
                if not self.connected:
                    self._redis_connect()
                redis_key = self._interest_key(key)
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.sadd(redis_key, self.host_id)
                    pipe.expire(redis_key, int(self.interest_ttl_s))
                    await pipe.execute()
                # recorded first, announced second: a node that reads the set after
                # this misses nothing, one that read it before hears the announcement
                await self.redis.publish(
                    self.channel,
                    self.json.dumps(
                        {
                            "method": "interest",
                            "namespace": key[0],
                            "room": key[1],
                            "host_id": self.host_id,
                        }
                    ),
                )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("socket.io: cannot record room %s in redis (%s); will retry", key[1], exc)
            self._unregistered.add(key)
            return
        self._registered[key] = time.monotonic()
        self._unregistered.discard(key)
        if len(self._registered) > self.rooms_cached:
            for old in [k for k in self._registered if not self._has_local(*k)]:
                del self._registered[old]

    def _heard_interest(self, data: dict[str, Any]) -> None:
        namespace, room, host = data.get("namespace"), data.get("room"), data.get("host_id")
        if not (isinstance(namespace, str) and isinstance(room, str) and isinstance(host, str)):
            return
        key = (namespace, room)
        hosts = self._hosts.get(key)
        if hosts is not None:
            hosts.add(host)
        else:
            if len(self._heard) > self.rooms_cached:
                self._heard.clear()  # the sets in Redis hold the same, read on demand
            self._heard.setdefault(key, set()).add(host)

    async def _elsewhere(self, namespace: str, room: str) -> bool:
        """Whether another node may have clients in the room (when unsure: yes)."""
        key = (namespace, room)
        hosts = self._hosts.get(key)
        if hosts is None:
            try:
                async with asyncio.timeout(2.0):
                    if not self.connected:
                        self._redis_connect()
                    members = await self.redis.smembers(self._interest_key(key))
            except (RedisError, OSError, TimeoutError):
                return True
            hosts = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
            hosts |= self._heard.pop(key, set())  # announced while the set was read
            hosts |= self._hosts.get(key, set())
            self._hosts[key] = hosts
            while len(self._hosts) > self.rooms_cached:
                self._hosts.popitem(last=False)
        else:
            self._hosts.move_to_end(key)
        return any(host != self.host_id for host in hosts)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> Any:
        room = to or room
        namespace = namespace or "/"
        if (
            isinstance(room, str)
            and callback is None
            and not kwargs.get("ignore_queue")
            # a room with no client here (say, another node's client's own room) is
            # published as python-socketio does
            and self._has_local(namespace, room)
            and not self._alone(time.monotonic())
            and not await self._elsewhere(namespace, room)
        ):
            self.local_only += 1
            kwargs["ignore_queue"] = True
        return await super().emit(
            event,
            data,
            namespace=namespace,
            room=room,
            skip_sid=skip_sid,
            callback=callback,
            **kwargs,
        )

    async def _publish(self, data: object) -> object:
        now = time.monotonic()
        if now < self._down_until:
            return None
        if self._alone(now):
            self.skipped += 1
            return None
        try:
            async with asyncio.timeout(2.0):
                if not self.connected:  # type: ignore[has-type]
                    self._redis_connect()
                receivers = await self.redis.publish(self.channel, self.json.dumps(data))
        except (RedisError, OSError, TimeoutError) as exc:
            self.connected = False
            self._down_until = now + self._retry_after_s
            log.warning("socket.io: cannot publish to redis (%s); other nodes miss events", exc)
            return None
        self.published += 1
        own = 1 if self._subscribed else 0
        self._solo = isinstance(receivers, int) and receivers <= own
        self._solo_checked = now
        return receivers

    def _alone(self, now: float) -> bool:
        """No other node listened at the last check, and that check is recent."""
        return self._solo and now - self._solo_checked < self.solo_recheck_s

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
            method = data.get("method")
            if method == "hello":
                continue
            if method == "interest":
                self._heard_interest(data)
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
        self._subscribed = False
        delay = 1.0
        while not self._closing:
            try:
                if not self._subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    self._subscribed = True
                    delay = 1.0
                    self._peer_seen()  # learn afresh whether this node is alone
                    await self._announce()
                    for key in list(self._unregistered):
                        if self._has_local(*key):
                            await self._register(key)
                async for message in self.pubsub.listen():
                    yield message
                self._subscribed = False  # the connection went away without an error
            except (RedisError, OSError) as exc:
                if self._closing:
                    break
                log.warning("socket.io: cannot receive from redis (%s); retrying", exc)
                self._subscribed = False
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
ENGINE_IO_TYPES = frozenset("0123456")
"""The first character of every Engine.IO text packet: its type (open ... noop)."""

UnknownPacket = Callable[[str | None, object], None]


class StrictEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, but a text frame of no packet type it knows (``9``, a
    letter) is handed to ``on_unknown`` (the Socket.IO server logs one WARNING line) and
    dropped: the library would log an ``IndexError`` traceback for ``9`` and end the
    connection with one for a letter. Frames arriving on a WebSocket are checked before
    the library decodes them; packets of a long-polling POST, as each socket receives
    them (:meth:`ChatServer._handle_eio_connect`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_unknown: UnknownPacket = lambda sid, frame: None
        drivers: dict[str, Any] = getattr(self, "_async")  # noqa: B009 (untyped in the library)
        if drivers.get("websocket") is not None:
            self._async = {**drivers, "websocket": _strict_websocket(drivers["websocket"])}


def _strict_websocket(base: type[Any]) -> type[Any]:
    class StrictWebSocket(base):  # type: ignore[misc]
        async def wait(self) -> Any:
            while True:
                frame = await super().wait()
                if not isinstance(frame, str) or (frame and frame[0] in ENGINE_IO_TYPES):
                    return frame
                socket = getattr(self.handler, "__self__", None)
                self.server.on_unknown(getattr(socket, "sid", None), frame)

    return StrictWebSocket


class ChatServer(socketio.AsyncServer):  # type: ignore[misc]
    """The Socket.IO server, stricter about what clients send.

    A client event that is not a plain name (``connect``, ``disconnect``, a number) gets
    ``unknown_event`` like any other name the protocol lacks, never those handlers. A
    frame that cannot be parsed or dispatched (bad JSON, nesting past the parser, an
    unknown packet type, an event packet without a name) is dropped with one WARNING
    line naming the connection, and counted; the connection stays open."""

    def __init__(self, *args: Any, metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics
        self.malformed = 0
        # Engine.IO's public handler registration: each message passes this guard
        self.eio.on("message", self._guarded_message)
        self.eio.on_unknown = self._unknown_packet

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return StrictEngineIO

    def _dropped(self, eio_sid: str | None, what: str) -> None:
        self.malformed += 1
        if self._metrics is not None:
            self._metrics.malformed_frames.inc()
        log.warning("dropped %s from sid=%s", what, eio_sid)

    def _unknown_packet(self, eio_sid: str | None, frame: object) -> None:
        self._dropped(eio_sid, f"an unknown engine.io packet {str(frame)[:40]!r}")

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            socket.receive = self._strict_receive(eio_sid, socket.receive)
            socket.handle_post_request = self._strict_post(eio_sid, socket.handle_post_request)
        return await super()._handle_eio_connect(eio_sid, environ)

    def _strict_receive(
        self, eio_sid: str, receive: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        async def strict(pkt: Any) -> None:
            kind = pkt.packet_type
            if not isinstance(kind, int) or not 0 <= kind < len(engineio.packet.packet_names):
                self._unknown_packet(eio_sid, kind)
                return
            await receive(pkt)

        return strict

    def _strict_post(
        self, eio_sid: str, handle: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        async def strict(environ: Any) -> None:
            try:
                await handle(environ)
            except ValueError as exc:  # a packet the library cannot decode
                self._dropped(eio_sid, f"an undecodable engine.io packet: {str(exc)[:80]}")

        return strict

    async def _guarded_message(self, eio_sid: str, data: object) -> None:
        try:
            await self._handle_eio_message(eio_sid, data)
        except Exception as exc:  # noqa: BLE001  (one line per bad frame, not a traceback)
            self._dropped(
                eio_sid, f"a malformed socket.io frame: {type(exc).__name__}: {str(exc)[:120]}"
            )

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: object, data: object
    ) -> object:
        if not isinstance(data, list) or not data:
            raise ValueError("an event packet must be a list starting with the event name")
        if not isinstance(data[0], str) or data[0] in RESERVED_EVENTS:
            data = [f"<{str(data[0])[:40]}>", *data[1:]]
        return await super()._handle_event(eio_sid, namespace, id, data)
