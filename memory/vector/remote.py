"""One vector index shared by the processes of one host, over a Unix socket.

Qdrant Edge is an embedded store: one process opens its folder. When ``personae serve``
runs several worker processes, the supervisor opens the store and serves it with
:class:`IndexHost`; each worker reaches it through :class:`RemoteIndex`, which speaks
the :class:`~memory.vector.index.VectorIndex` protocol, so nothing above the index can tell.

The wire format is length-prefixed frames of pickled ``(id, method, args, kwargs)``
requests and ``(id, ok, value)`` replies, several in flight on one connection. Pickle
runs code on load, so the socket is created with mode 0600 inside the server's home:
only processes of the same user on the same host can connect, which are the processes
that could open the store's folder anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from memory import errors as memory_errors
from memory.errors import IndexNotOpen, IndexUnavailable, MemoryLayerError
from memory.vector.index import VectorIndex

log = logging.getLogger(__name__)

BACKEND = "shared"
_HEADER = struct.Struct("!I")
MAX_FRAME = 256 * 1024 * 1024
# the methods of the VectorIndex protocol a worker may call; nothing else is dispatched
METHODS = frozenset(
    {
        "upsert",
        "search",
        "list_memories",
        "get",
        "delete",
        "forget_session",
        "forget_user",
        "set_pinned",
        "set_importance",
        "set_metadata",
        "count",
    }
)
# a Unix socket path must fit in sun_path (108 bytes on Linux)
MAX_SOCKET_PATH = 100


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > MAX_FRAME:
        raise IndexUnavailable(BACKEND, f"a frame of {size} bytes is over the limit")
    return pickle.loads(await reader.readexactly(size))


def _frame(value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _exported(exc: BaseException) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """An error as plain data: memory-layer errors keep their type and fields."""
    if isinstance(exc, MemoryLayerError):
        return type(exc).__name__, exc.args, dict(vars(exc))
    reason = f"{type(exc).__name__}: {exc}"
    message = f"{BACKEND} memory index unavailable: {reason}"
    return "IndexUnavailable", (message,), {"backend": BACKEND, "reason": reason}


def _imported(name: str, args: tuple[Any, ...], fields: dict[str, Any]) -> MemoryLayerError:
    cls = getattr(memory_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, MemoryLayerError)):
        return IndexUnavailable(BACKEND, f"{name}: {args[0] if args else ''}")
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(fields)
    return exc


class IndexHost:
    """Serve one index on a Unix socket until closed (``async with``).

    The index opens on the first client's ``open`` call, with that client's embedding
    dimension (the host need not load the embedding model): ``opener(dim)`` returns the
    index to open. A later client with another dimension gets
    :class:`~memory.errors.DimensionMismatch`. ``path`` is used when it fits a socket
    address; otherwise the socket goes in a fresh private temporary folder, and
    :attr:`path` tells where."""

    def __init__(self, opener: Callable[[int], VectorIndex], path: Path) -> None:
        self._opener = opener
        self._wanted = path
        self._path = path
        self._scratch: Path | None = None
        self._index: VectorIndex | None = None
        self._opening = asyncio.Lock()
        self._stack = AsyncExitStack()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> Self:
        if len(os.fsencode(self._wanted)) > MAX_SOCKET_PATH:
            self._scratch = Path(tempfile.mkdtemp(prefix="personae-"))
            self._path = self._scratch / "index.sock"
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # left by a process that did not stop cleanly
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self._path))
        finally:
            os.umask(old)
        return self

    async def _open(self, dim: int) -> int:
        async with self._opening:
            if self._index is None:
                self._index = await self._stack.enter_async_context(self._opener(dim))
            if self._index.dim != dim:
                raise memory_errors.DimensionMismatch("shared index", self._index.dim, dim)
            return dim

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()  # each connection's loop then ends on its own
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._index = None
        await self._stack.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        calls: set[asyncio.Task[None]] = set()
        lock = asyncio.Lock()
        try:
            while True:
                try:
                    request = await _read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError, OSError):
                    return
                call = asyncio.create_task(self._answer(request, writer, lock))
                calls.add(call)
                call.add_done_callback(calls.discard)
        except Exception as exc:  # noqa: BLE001 - a malformed frame: drop that client only
            log.warning("shared index: dropping a client: %s: %s", type(exc).__name__, exc)
        finally:
            for call in list(calls):
                call.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _answer(self, request: Any, writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        try:
            call_id, method, args, kwargs = request
        except (TypeError, ValueError):
            log.warning("shared index: ignoring a malformed request")
            return
        try:
            if method == "open":
                value: Any = await self._open(*args)
            elif method not in METHODS:
                raise IndexUnavailable(BACKEND, f"unknown method {method!r}")
            elif self._index is None:
                raise IndexNotOpen(BACKEND)
            else:
                value = await getattr(self._index, method)(*args, **kwargs)
            reply = (call_id, True, value)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = (call_id, False, _exported(exc))
        try:
            frame = _frame(reply)
        except Exception as exc:  # noqa: BLE001 - a result that cannot be sent is an error
            frame = _frame((call_id, False, _exported(exc)))
        async with lock:
            with contextlib.suppress(ConnectionError):
                writer.write(frame)
                await writer.drain()


def check_socket_owner(path: Path) -> None:
    """Refuse (:class:`IndexUnavailable`) a socket this user does not own: its replies
    are unpickled, so a socket another local user put in its place could run code as
    this user."""
    try:
        owner = os.stat(path).st_uid
    except OSError as exc:
        raise IndexUnavailable(BACKEND, f"cannot reach {path}: {exc}") from exc
    if owner != os.getuid():
        raise IndexUnavailable(
            BACKEND, f"{path} belongs to user id {owner}, not to this user: not using it"
        )


def _check_peer(writer: asyncio.StreamWriter, path: Path) -> None:
    """Where the system says who listens (Linux ``SO_PEERCRED``), refuse a process of
    another user, whoever owns the socket's file."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise IndexUnavailable(
            BACKEND, f"{path} is served by user id {uid}, not by this user: not using it"
        )


class RemoteIndex:
    """The index an :class:`IndexHost` serves, reached over its Unix socket.

    One connection carries every call, several in flight; when it breaks, the calls in
    flight fail with :class:`IndexUnavailable` and the next call reconnects."""

    def __init__(self, path: Path, *, dim: int, timeout_s: float = 30.0) -> None:
        self._path = path
        self._want_dim = dim
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._open = False

    @property
    def dim(self) -> int:
        if not self._open:
            raise IndexNotOpen(BACKEND)
        return self._want_dim

    async def __aenter__(self) -> Self:
        self._open = True
        try:
            await self._connect()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        await self._disconnect(IndexNotOpen(BACKEND))

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            check_socket_owner(self._path)
            try:
                reader, writer = await asyncio.open_unix_connection(str(self._path))
            except OSError as exc:
                raise IndexUnavailable(BACKEND, f"cannot reach {self._path}: {exc}") from exc
            try:
                _check_peer(writer, self._path)
            except IndexUnavailable:
                writer.close()
                raise
            self._reader_task = asyncio.create_task(self._read_replies(reader, writer))
            # every connection starts by opening the index with this client's dimension,
            # so a restarted host serves again without the caller noticing
            try:
                await self._request(writer, "open", (self._want_dim,), {})
            except BaseException:
                writer.close()
                raise
            self._writer = writer
            return writer

    async def _read_replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        reason = "the connection closed"
        try:
            while True:
                call_id, ok, value = await _read_frame(reader)
                future = self._pending.pop(call_id, None)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(_imported(*value))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = f"the connection closed ({type(exc).__name__})"
        except MemoryLayerError as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - an unreadable reply ends this connection
            reason = f"unreadable reply: {type(exc).__name__}: {exc}"
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            self._fail_pending(IndexUnavailable(BACKEND, reason))

    def _fail_pending(self, exc: MemoryLayerError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    async def _disconnect(self, exc: MemoryLayerError) -> None:
        writer, task = self._writer, self._reader_task
        self._writer = self._reader_task = None
        if writer is not None:
            writer.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_pending(exc)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self._open:
            raise IndexNotOpen(BACKEND)
        return await self._request(await self._connect(), method, args, kwargs)

    async def _request(
        self, writer: asyncio.StreamWriter, method: str, args: Any, kwargs: Any
    ) -> Any:
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            writer.write(_frame((call_id, method, args, kwargs)))
            await writer.drain()
        except ConnectionError as exc:
            self._pending.pop(call_id, None)
            raise IndexUnavailable(BACKEND, f"cannot send to {self._path}: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout_s):
                return await future
        except TimeoutError as exc:
            raise IndexUnavailable(BACKEND, f"no answer within {self._timeout_s:.0f} s") from exc
        finally:
            self._pending.pop(call_id, None)

    async def upsert(self, *args: Any, **kwargs: Any) -> None:
        await self._call("upsert", *args, **kwargs)

    async def search(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("search", *args, **kwargs)

    async def list_memories(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("list_memories", *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get", *args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        await self._call("delete", *args, **kwargs)

    async def forget_session(self, *args: Any, **kwargs: Any) -> int:
        return int(await self._call("forget_session", *args, **kwargs))

    async def forget_user(self, *args: Any, **kwargs: Any) -> int:
        return int(await self._call("forget_user", *args, **kwargs))

    async def set_pinned(self, *args: Any, **kwargs: Any) -> None:
        await self._call("set_pinned", *args, **kwargs)

    async def set_importance(self, *args: Any, **kwargs: Any) -> None:
        await self._call("set_importance", *args, **kwargs)

    async def set_metadata(self, *args: Any, **kwargs: Any) -> None:
        await self._call("set_metadata", *args, **kwargs)

    async def count(self, *args: Any, **kwargs: Any) -> int:
        return int(await self._call("count", *args, **kwargs))
