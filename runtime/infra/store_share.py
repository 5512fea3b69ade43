"""The embedded vector store beside a running server.

Qdrant Edge opens in one process at a time. A server on the embedded store therefore
lends it on the Unix socket workers use (``$PERSONAE_HOME/index.sock``, mode 0600; see
:mod:`memory.vector.remote`), and CLI commands that need memories reach it there while the
server runs, instead of failing to open the store."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

from memory import VectorIndex
from memory.errors import IndexUnavailable
from memory.vector.remote import MAX_SOCKET_PATH, IndexHost, check_socket_owner
from runtime.settings import Settings

log = logging.getLogger(__name__)
SOCKET_NAME = "index.sock"


def socket_path(settings: Settings) -> Path:
    return settings.home / SOCKET_NAME


class _Lent:
    """An index already open elsewhere, entered and left without closing it."""

    def __init__(self, index: VectorIndex) -> None:
        self._index = index

    async def __aenter__(self) -> VectorIndex:
        return self._index

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def dim(self) -> int:
        return self._index.dim


@asynccontextmanager
async def lend_index(settings: Settings, index: VectorIndex) -> AsyncIterator[None]:
    """While open, serve this process's embedded index on the home's socket (only for
    the embedded Qdrant Edge store: a Qdrant server takes every client itself)."""
    path = socket_path(settings)
    if (
        settings.qdrant_url is not None
        or settings.index_socket is not None
        or len(os.fsencode(path)) > MAX_SOCKET_PATH
    ):
        yield
        return
    if _answers(path):
        log.warning("another process serves the vector store on %s; not sharing", path)
        yield
        return
    async with IndexHost(lambda dim: _Lent(index), path):  # type: ignore[arg-type,return-value]
        log.info("vector store shared with CLI commands on %s", path)
        yield


def beside_server(settings: Settings) -> Settings:
    """``settings`` reaching a running server's embedded store when one shares it."""
    if settings.qdrant_url is not None or settings.index_socket is not None:
        return settings
    path = socket_path(settings)
    if not _answers(path):
        return settings
    log.info("a running server holds the vector store: using it through %s", path)
    return settings.model_copy(update={"index_socket": path})


def _answers(path: Path) -> bool:
    if not path.is_socket():
        return False
    try:
        check_socket_owner(path)
    except IndexUnavailable as exc:
        log.warning("%s", exc)
        return False
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False  # left behind by a server that did not stop cleanly
    return True


def check_store_free(settings: Settings, store: Path) -> None:
    """Fail at once, saying what to do, when another process holds the embedded store at
    ``store`` (opening it would wait and then fail on its write-ahead log's lock)."""
    wal = store / "wal"
    if not wal.is_dir():
        return
    try:
        fd = os.open(wal, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise IndexUnavailable(
            "qdrant-edge",
            f"another process (a running `personae serve`?) holds the store at {store}: "
            f"run this with that server's PERSONAE_HOME (it lends the store on "
            f"{socket_path(settings)}), stop it, or set PERSONAE_QDRANT_URL",
        ) from None
    except OSError:
        return
    finally:
        os.close(fd)  # closing releases the probe's lock
