"""One server per port and per home: ``personae serve`` checks that its port is free
before it opens anything, and holds ``$PERSONAE_HOME/server.lock`` while it runs (a lock
the kernel releases when the process ends, however it ends) with its address written in
it, so that a second server beside it says that one is already running, and where,
instead of failing on a store the first one holds."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from runtime.errors import RuntimeLayerError, SettingsError
from runtime.infra.private import private_folder
from runtime.settings import Settings

LOCK_NAME = "server.lock"


class ServerRunning(RuntimeLayerError):
    """Another server already runs on the port, or with the home; the message says where."""


def server_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}/"


def check_exposure(settings: Settings) -> None:
    """Raise :class:`SettingsError` when the server would listen beyond loopback with no
    secret (every client who reaches the port would be the local admin) and
    ``PERSONAE_ALLOW_OPEN_WITHOUT_SECRET`` does not say that is meant."""
    if settings.auth_enabled or settings.allow_open_without_secret or is_loopback(settings.host):
        return
    raise SettingsError(
        f"PERSONAE_HOST={settings.host} without PERSONAE_AUTH_SECRET would make anyone who "
        "reaches the port an admin: set PERSONAE_AUTH_SECRET, serve on 127.0.0.1, or set "
        "PERSONAE_ALLOW_OPEN_WITHOUT_SECRET=true if only trusted clients can reach it"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_port_free(settings: Settings) -> None:
    """Raise :class:`ServerRunning` when something already listens on the settings'
    host and port (a bind that would fail once every service was opened)."""
    try:
        infos = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return  # the server's own bind reports a host that does not resolve
    for family, kind, proto, _, address in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    return
                raise ServerRunning(
                    f"{server_url(settings)} is already in use: a server is already running "
                    "there (stop it, or set PERSONAE_PORT)"
                ) from None


@contextlib.contextmanager
def holding_home(settings: Settings) -> Iterator[None]:
    """While open, this process is the server of ``$PERSONAE_HOME``; raise
    :class:`ServerRunning`, naming the other one's address, when another holds it.

    Only a home with the embedded vector store is held: that store opens in one process
    at a time. Servers sharing a Qdrant server may share a home too."""
    if settings.qdrant_url is not None:
        yield
        return
    private_folder(settings.home)
    path = settings.home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerRunning(_held_message(fd, settings.home)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{server_url(settings)} {os.getpid()}\n".encode())
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


def _held_message(fd: int, home: Path) -> str:
    url, _, pid = os.read(fd, 600).decode(errors="replace").strip().partition(" ")
    where = f" on {url}" if url else ""
    by = f" (pid {pid})" if pid.isdigit() else ""
    return (
        f"a server is already running{where}{by} with PERSONAE_HOME {home}: "
        "stop it first, or set another PERSONAE_HOME"
    )
