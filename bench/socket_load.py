"""Socket.IO load benchmark: N concurrent clients, each running M turns, against a
server process on the fake streaming model; then a loss audit in PostgreSQL and Qdrant.

    HF_HUB_OFFLINE=1 python bench/socket_load.py --clients 1000 --active 300 --duration 60

Starts the server itself (a separate process, ``tests/socket_server/serve_fake.py``) on
the CI services when PERSONAE_TEST_DATABASE_URL / PERSONAE_TEST_REDIS_URL are set, else on
embedded ones, in a fresh database. The server runs the real embedder (the backend
``--embedding-backend`` names, ONNX Runtime by default) and the trait scorer, as users
run it; only the model is fake (it is remote in production), and each of its replies
quotes the user's message, so no two are alike. ``--fake-embedder`` runs the fake
embedder without the trait scorer instead: the server's own cost. The clients run in
this process. Reports which embedder ran and its batch sizes, connections held, turns/s,
time to first token and full-turn latency percentiles, errors by code, server RSS
before and after, and the audit. ``--soak 600`` runs the soak variant and reports
latency and RSS per minute."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load_measure import (
    Stats,
    audit_store,
    cpu_by_part,
    database_activity,
    embedder_report,
    pct,
    rss_kb,
    rss_kinds_kb,
    rss_split_kb,
    slowest,
)

from runtime.infra.auth import mint_token
from runtime.infra.loop import run as run_on_loop
from runtime.infra.loop import tune_collector

SECRET = "bench-" + "x" * 40
STATS_SETTLE_S = 11.0


class Bot:
    """One client: connect, start a session, then send turns, each after the last reply."""

    def __init__(self, n: int, url: str, token: str, stats: Stats, persona: str) -> None:
        self.n = n
        self.url = url
        self.stats = stats
        self.persona = persona
        self.sio = socketio.AsyncClient(reconnection=False)
        self.token = token
        self.sid = ""
        self._sent_at = 0.0
        self._first: float | None = None
        self._acked: float | None = None
        self._started: float | None = None
        self._token_frames = 0
        self._done = asyncio.Event()
        self.sio.on("message.started", self._on_started, namespace="/chat")
        self.sio.on("message.token", self._on_token, namespace="/chat")
        self.sio.on("message.done", self._on_done, namespace="/chat")
        self.sio.on("message.error", self._on_error, namespace="/chat")

    async def _on_started(self, data: Any) -> None:
        if self._started is None:
            self._started = time.perf_counter()

    async def _on_token(self, data: Any) -> None:
        self._token_frames += 1
        if self._first is None:
            self._first = time.perf_counter()

    async def _on_done(self, data: Any) -> None:
        now = time.perf_counter()
        self.stats.done.append(data["message"]["id"])
        self.stats.token_frames.append(self._token_frames)
        if self._first is not None:
            ttft = (self._first - self._sent_at) * 1000
            self.stats.ttft.append(ttft)
            # when this client saw the ack and message.started, next to the server's timings
            seen = {
                f"client_{name}_ms": (at - self._sent_at) * 1000
                for name, at in (("ack", self._acked), ("started", self._started))
                if at is not None
            }
            self.stats.traced.append((ttft, {**(data["message"].get("timings") or {}), **seen}))
        self.stats.turn.append((now - self._sent_at) * 1000)
        self._done.set()

    async def _on_error(self, data: Any) -> None:
        self.stats.errors[data.get("code", "?")] += 1
        self._done.set()

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            namespaces=["/chat"],
            auth={"token": self.token},
            transports=["websocket"],
            wait_timeout=60,
        )
        ack = await self.sio.call(
            "session.start", {"personas": [self.persona]}, namespace="/chat", timeout=60
        )
        if not ack.get("ok"):
            raise RuntimeError(f"session.start failed: {ack}")
        self.sid = ack["session"]["id"]

    async def turn(self, i: int, deadline: float) -> bool:
        self._first = self._acked = self._started = None
        self._token_frames = 0
        self._done.clear()
        self._sent_at = time.perf_counter()
        cid = f"b{self.n}-{i}"
        try:
            ack = await self.sio.call(
                "message.send",
                {
                    "session_id": self.sid,
                    "text": f"Message {i} from bot {self.n}: "
                    f"I like {random.choice(['tea', 'chess', 'rain', 'maths', 'jazz'])}.",
                    "client_msg_id": cid,
                },
                namespace="/chat",
                timeout=60,
            )
        except socketio.exceptions.TimeoutError:
            self.stats.errors["ack_timeout"] += 1
            return False
        if not ack.get("ok"):
            code = ack["error"]["code"]
            self.stats.errors[code] += 1
            if code == "rate_limited":
                await asyncio.sleep(float(ack["error"].get("retry_after", 1)))
            return False
        self._acked = time.perf_counter()
        self.stats.acked.append((self.sid, ack["message"]["id"]))
        try:
            await asyncio.wait_for(self._done.wait(), max(1.0, deadline - time.perf_counter() + 30))
        except TimeoutError:
            self.stats.errors["reply_timeout"] += 1
            return False
        return True


async def run(args: argparse.Namespace) -> dict[str, Any]:
    database_url, redis_url, cleanup = await services()
    port = args.port
    home = Path(tempfile.mkdtemp(prefix="personae-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {
        "PERSONAE_DATABASE_URL": database_url,
        "PERSONAE_REDIS_URL": redis_url,
        "PERSONAE_HOME": str(home),
        "PERSONAE_PORT": str(port),
        "PERSONAE_AUTH_SECRET": SECRET,
        "PERSONAE_LOG_LEVEL": "WARNING",
        "PERSONAE_RATE_LIMIT_PER_MINUTE": "100000",
        "PERSONAE_MAX_CONCURRENT_TURNS": "1000",
        "PERSONAE_DB_POOL_MAX": str(args.pool),
        "PERSONAE_WORKERS": str(args.workers),
        "PERSONAE_EVENT_LOOP": args.event_loop,
        "PERSONAE_REDIS_PREFIX": f"load{uuid.uuid4().hex[:6]}",
        "FAKE_TOKENS": str(args.tokens),
        "FAKE_TOKEN_DELAY_S": str(args.token_delay),
        "FAKE_VARIED_REPLY": "1",
        "FAKE_EMBEDDER": "1" if args.fake_embedder else "0",
        "EMBEDDER_STATS_DIR": str(home / "embedder-stats"),
        "PERSONAE_EMBEDDING_BACKEND": args.embedding_backend,
        "PERSONAE_EMBEDDING_PRECISION": args.embedding_precision,
        "PERSONAE_EMBEDDING_CACHE_DIR": str(args.model_cache),
        "PYTHONPATH": str(ROOT),
    }
    (home / "embedder-stats").mkdir()
    log_path = home / "server.log"
    log_file = log_path.open("w")
    server = subprocess.Popen(  # noqa: ASYNC220 - the server runs beside this loop
        [sys.executable, "-m", "tests.socket_server.serve_fake"],
        env=env,
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with asyncio.timeout(600):  # the first real start exports the model
            while "ready" not in log_path.read_text():
                if server.poll() is not None:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")
                await asyncio.sleep(0.2)
        await seed(database_url)
        url = f"http://127.0.0.1:{port}"
        rss_before = rss_kb(server.pid)
        stats = Stats()
        token = {i: mint_token(SECRET, f"user{i}") for i in range(args.clients)}
        bots = [Bot(i, url, token[i], stats, "load-tutor") for i in range(args.clients)]
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(50)

        async def connect(b: Bot) -> None:
            async with sem:
                await b.connect()

        await asyncio.gather(*(connect(b) for b in bots))
        connect_s = time.perf_counter() - t0
        # the clients share the machine with the server: their collector is tuned as the
        # server's is, so that less of the machine goes to the load generator
        tune_collector()
        held = sum(b.sio.connected for b in bots)
        rss_connected = rss_kb(server.pid)
        duration = args.soak or args.duration
        # a server backend reports its counters when idle, at most every 10 s: let the
        # set-up's (migrations, personas, the sessions just started) land before the
        # first reading, or they would be counted as the turns'
        await asyncio.sleep(STATS_SETTLE_S)
        cpu_start = cpu_by_part(server.pid)
        db_start = await database_activity(database_url)
        start = time.perf_counter()
        deadline = start + duration
        turns_done = 0

        async def drive(b: Bot) -> None:
            nonlocal turns_done
            i = 0
            if args.think > 0:
                # clients with pauses start spread over one pause, as people do, not all
                # in the same millisecond (a burst the steady state never sees again)
                await asyncio.sleep(random.uniform(0, 2 * args.think))
            while time.perf_counter() < deadline and (args.turns == 0 or i < args.turns):
                ok = await b.turn(i, deadline)
                i += 1
                if ok:
                    turns_done += 1
                    minute = int((time.perf_counter() - start) // 60)
                    stats.per_minute[minute].append(stats.turn[-1])
                    if args.think > 0:
                        await asyncio.sleep(random.uniform(0, 2 * args.think))

        active = bots[: args.active] if args.active else bots
        rss_minutes: dict[int, int] = {}
        rss_parts: dict[int, dict[str, int]] = {}
        rss_supervisor: dict[int, dict[str, int]] = {}

        async def sample_rss() -> None:
            while True:
                await asyncio.sleep(60)
                minute = int((time.perf_counter() - start) // 60)
                rss_minutes[minute] = rss_kb(server.pid)
                rss_parts[minute] = rss_split_kb(server.pid)
                rss_supervisor[minute] = rss_kinds_kb(server.pid)

        sampler = asyncio.create_task(sample_rss())
        await asyncio.gather(*(drive(b) for b in active))
        sampler.cancel()
        elapsed = time.perf_counter() - start
        cpu_end = cpu_by_part(server.pid)
        rss_after = rss_kb(server.pid)
        server_kinds_after = rss_kinds_kb(server.pid)
        still_held = sum(b.sio.connected for b in bots)
        await asyncio.gather(*(b.sio.disconnect() for b in bots), return_exceptions=True)
        # SIGTERM: the server finishes what is running (memories, traits) and closes Qdrant
        server.terminate()
        await asyncio.to_thread(server.wait, 120)
        # the server's connections have closed, so their statistics are flushed; read
        # before the audit, whose reads are not the turns'
        db_end = await database_activity(database_url)
        embedder = embedder_report(home / "embedder-stats", args.fake_embedder, turns_done)
        audit = await audit_store(database_url, stats, home, int(embedder.get("dim", 0)))
        per_turn_db = {
            k: round((db_end[k] - db_start[k]) / max(1, turns_done), 2) for k in db_start
        }
        frames = [float(n) for n in stats.token_frames]
        report = {
            "embedder": embedder,
            "clients": args.clients,
            "server_workers": args.workers,
            "server_event_loop": args.event_loop,
            "active": len(active),
            "tokens_per_reply": args.tokens,
            "token_delay_s": args.token_delay,
            "connect_s": round(connect_s, 1),
            "connections_held": held,
            "connections_held_at_end": still_held,
            "duration_s": round(elapsed, 1),
            "turns": turns_done,
            "turns_per_s": round(turns_done / elapsed, 1),
            "ttft_ms": {
                q: round(pct(stats.ttft, v), 1)
                for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
            "turn_ms": {
                q: round(pct(stats.turn, v), 1)
                for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
            "fake_stream_ms": round(args.tokens * args.token_delay * 1000, 1),
            "token_frames_per_reply": {q: pct(frames, v) for q, v in (("p50", 0.5), ("p95", 0.95))},
            # CPU time per completed turn, by process: steadier than turns/s on a machine
            # shared with other work, and it says where the machine's cores go
            "cpu_ms_per_turn": {
                k: round((cpu_end[k] - cpu_start[k]) * 1000 / max(1, turns_done), 2)
                for k in cpu_start
            },
            "cpu_ms_per_turn_all": round(
                sum(cpu_end[k] - cpu_start[k] for k in cpu_start) * 1000 / max(1, turns_done), 2
            ),
            "errors": dict(stats.errors),
            "rss_mb": {
                "before": rss_before // 1024,
                "connected": rss_connected // 1024,
                "after": rss_after // 1024,
                "server_anon_file_after": {k: v // 1024 for k, v in server_kinds_after.items()},
            },
            "audit": audit,
            # transactions (each statement outside a pipeline is one) and rows, from
            # pg_stat_database for the benchmark's own database, from after the set-up
            # to the server's exit
            "postgres_per_turn": per_turn_db,
            "slowest_1pct_server_ms": slowest(stats.traced),
        }
        if args.soak:
            report["per_minute"] = {
                m: {
                    "turns": len(v),
                    "turn_p50_ms": round(statistics.median(v), 1),
                    "turn_p99_ms": round(pct(v, 0.99), 1),
                    "rss_mb": rss_minutes.get(m + 1, 0) // 1024,
                    "rss_mb_by_process": {
                        k: v // 1024 for k, v in rss_parts.get(m + 1, {}).items()
                    },
                    "server_rss_mb_anon_file": {
                        k: v // 1024 for k, v in rss_supervisor.get(m + 1, {}).items()
                    },
                }
                for m, v in sorted(stats.per_minute.items())
            }
        return report
    finally:
        if server.poll() is None:
            server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()
        server_log = log_path.read_text()[-3000:] if log_path.exists() else ""
        if args.show_server_log:
            print(server_log, file=sys.stderr)
        await cleanup()
        shutil.rmtree(home, ignore_errors=True)


async def seed(database_url: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    from personas import Actor, PersonaDef, PersonaRepository

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, open=False, kwargs={"autocommit": True}
    )
    await pool.open()
    try:
        repo = PersonaRepository(pool)
        if await repo.find("load-tutor") is None:
            await repo.create(
                PersonaDef.model_validate(
                    {
                        "slug": "load-tutor",
                        "name": "Load Tutor",
                        "description": "A patient tutor used by the load benchmark.",
                        "traits": [{"name": "patience", "value": 0.8}],
                    }
                ),
                Actor("bench", is_admin=True),
            )
    finally:
        await pool.close()


async def services() -> tuple[str, str, Any]:
    db = os.environ.get("PERSONAE_TEST_DATABASE_URL")
    redis = os.environ.get("PERSONAE_TEST_REDIS_URL")
    stack: list[Any] = []
    if db is None or redis is None:
        from runtime.infra.embedded import EmbeddedPostgres, EmbeddedRedis

        folder = Path(tempfile.mkdtemp(prefix="personae-load-svc-"))
        if db is None:
            pg = EmbeddedPostgres(folder / "pg")
            await pg.__aenter__()
            stack.append(pg)
            db = pg.url
        if redis is None:
            rd = EmbeddedRedis(folder / "redis")
            await rd.__aenter__()
            stack.append(rd)
            redis = rd.url
    name = f"personae_load_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    from urllib.parse import urlsplit, urlunsplit

    from runtime.infra.migrate import migrate_url

    url = urlunsplit(urlsplit(db)._replace(path="/" + name))
    await migrate_url(url)

    async def cleanup() -> None:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for s in reversed(stack):
            await s.stop()

    return url, redis, cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="connections to hold")
    parser.add_argument("--active", type=int, default=0, help="of those, how many chat (0: all)")
    parser.add_argument(
        "--turns", type=int, default=0, help="turns per active client (0: until the duration)"
    )
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--soak", type=float, default=0.0, help="soak for this many seconds")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between turns (s)")
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the server's event loop (PERSONAE_EVENT_LOOP)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server worker processes (PERSONAE_WORKERS)"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--fake-embedder",
        action="store_true",
        help="the fake embedder and no trait scorer: the server's own cost",
    )
    parser.add_argument(
        "--embedding-backend",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="the real embedder's backend (PERSONAE_EMBEDDING_BACKEND)",
    )
    parser.add_argument(
        "--embedding-precision",
        choices=("int8", "fp32"),
        default="int8",
        help="ONNX Runtime's precision (PERSONAE_EMBEDDING_PRECISION)",
    )
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "personae-bench-models",
        help="where the server keeps the ONNX export between runs",
    )
    parser.add_argument("--show-server-log", action="store_true")
    args = parser.parse_args()
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)
    logging.getLogger("socketio.client").setLevel(logging.CRITICAL)
    # the load generator shares the cores with the server: run it on the faster loop too
    report = run_on_loop(run(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
