"""``personae serve`` with several worker processes on one port (``PERSONAE_WORKERS``).

One server process runs Python on one core. With ``workers > 1`` the process that was
started becomes a supervisor: it starts the embedded databases (for unset URLs), applies
the migrations once, shares the embedded vector store on a Unix socket
(:mod:`memory.vector.remote`; a configured Qdrant server is used by every worker directly), and
runs the workers, each a full server binding the same port with ``SO_REUSEPORT``. The
kernel spreads new connections across them; Redis already carries rooms, rate limits and
the persona cache between them, as between nodes.

Engine.IO's long-polling transport needs every request of one client to reach the same
process, which a shared port cannot promise, so workers take WebSocket connections only.

A worker that dies after it was ready is restarted; one that exits before it is ready
stops the whole server with its error (a busy port, a bad setting). SIGTERM or SIGINT
goes on to every worker, which drains its turns as a single server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import multiprocess

from memory.vector.remote import IndexHost
from runtime.errors import RuntimeLayerError
from runtime.infra.loop import tune_collector
from runtime.infra.migrate import migrate_url
from runtime.services import resolved_urls, vector_index
from runtime.settings import Settings

log = logging.getLogger(__name__)

READY = "ready on "
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads it at import: the supervisor sets it for its workers only."""
RESTART_DELAY_S = 1.0


class WorkerFailed(RuntimeLayerError):
    """A worker process exited before it was ready to serve."""


@dataclass
class _Worker:
    number: int
    proc: asyncio.subprocess.Process
    ready: asyncio.Event
    pump: asyncio.Task[None]


def default_command() -> list[str]:
    return [sys.executable, "-m", "runtime.cli", "serve"]


async def supervise(settings: Settings, command: Sequence[str] | None = None) -> None:
    """Run ``settings.workers`` copies of ``command`` (each a server, told by the
    environment that it is worker *n*) until SIGTERM/SIGINT."""
    command = list(command or default_command())
    async with contextlib.AsyncExitStack() as stack:
        database_url, redis_url = await stack.enter_async_context(resolved_urls(settings))
        applied = await migrate_url(database_url)
        if applied:
            log.info("applied %d migration(s)", len(applied))
        env = {k: v for k, v in os.environ.items() if k != "PERSONAE_INDEX_SOCKET"}
        env |= {"PERSONAE_DATABASE_URL": database_url, "PERSONAE_REDIS_URL": redis_url}
        # each worker's metrics go to files here, and any worker's /metrics sums them
        metrics_dir = (settings.home / "metrics").resolve()
        shutil.rmtree(metrics_dir, ignore_errors=True)  # a previous run's values
        metrics_dir.mkdir(parents=True, mode=0o700)
        env |= {"PERSONAE_METRICS_DIR": str(metrics_dir), MULTIPROC_ENV: str(metrics_dir)}
        if not settings.qdrant_url:
            own = settings.model_copy(update={"index_socket": None})  # the store itself
            host = IndexHost(lambda dim: vector_index(own, dim), settings.home / "index.sock")
            await stack.enter_async_context(host)
            env["PERSONAE_INDEX_SOCKET"] = str(host.path)
        tune_collector()  # a full collection here stalls every worker's index calls
        await _Supervisor(settings, command, env).run()


class _Supervisor:
    def __init__(self, settings: Settings, command: list[str], env: dict[str, str]) -> None:
        self._settings = settings
        self._command = command
        self._env = env
        self._workers: dict[int, _Worker] = {}
        self._stopping = asyncio.Event()
        self._failed: str | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            for n in range(self._settings.workers):
                await self._start(n)
            waits = [asyncio.create_task(w.ready.wait()) for w in self._workers.values()]
            stop = asyncio.create_task(self._stopping.wait())
            first: list[asyncio.Future[Any]] = [stop, asyncio.gather(*waits)]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            for task in [stop, *waits]:
                task.cancel()
            if not self._stopping.is_set():
                s = self._settings
                print(f"{READY}http://{s.host}:{s.port}/ ({s.workers} workers)", flush=True)
                log.info("personae serving with %d worker processes", s.workers)
                await self._stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self._stop_all()
        if self._failed:
            raise WorkerFailed(self._failed)

    async def _start(self, n: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._command,
            env=self._env | {"PERSONAE_WORKER": str(n)},
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        ready = asyncio.Event()
        pump = asyncio.create_task(self._pump(n, proc, ready), name=f"worker-{n}")
        self._workers[n] = _Worker(n, proc, ready, pump)

    async def _pump(self, n: int, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        """Pass the worker's output on, note when it is ready, and handle its exit."""
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(READY):
                ready.set()
                continue
            print(f"[worker {n}] {line}", flush=True)
        code = await proc.wait()
        metrics_dir = self._env.get("PERSONAE_METRICS_DIR")
        if metrics_dir:
            # its gauges stop counting; its counters stay in the sums
            multiprocess.mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
        if self._stopping.is_set():
            return
        if not ready.is_set():
            self._failed = f"worker {n} exited with code {code} before it was ready"
            log.error("%s; stopping", self._failed)
            self._stopping.set()
            return
        log.error("worker %d exited with code %d; restarting it", n, code)
        await asyncio.sleep(RESTART_DELAY_S)
        if not self._stopping.is_set():
            await self._start(n)

    async def _stop_all(self) -> None:
        workers = list(self._workers.values())
        for w in workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        # each worker drains within its grace period, then closes its connections
        deadline = self._settings.shutdown_grace_s + 15.0
        waits = [asyncio.create_task(w.proc.wait()) for w in workers]
        if waits:
            _, late = await asyncio.wait(waits, timeout=deadline)
            for w in workers:
                if w.proc.returncode is None:
                    log.error("worker %d did not stop in %.0f s; killing it", w.number, deadline)
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.kill()
            if late:
                await asyncio.wait(late, timeout=5.0)
        for w in workers:
            w.pump.cancel()
        await asyncio.gather(*(w.pump for w in workers), return_exceptions=True)
