"""What the load benchmark (``bench/socket_load.py``) measures besides latency: the
clients' tallies, CPU and resident memory by process from ``/proc``, PostgreSQL's
activity in the benchmark's database, the embedder's report, and the loss audit."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg


@dataclass
class Stats:
    ttft: list[float] = field(default_factory=list)
    turn: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (session, message id)
    done: list[str] = field(default_factory=list)  # reply ids
    per_minute: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    token_frames: list[int] = field(default_factory=list)  # message.token events per reply
    # (ttft ms, the server's own timings of that turn), to see where the tail goes
    traced: list[tuple[float, dict[str, float]]] = field(default_factory=list)


def slowest(traced: list[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Medians of the server's step timings over the turns with the slowest 1% of time
    to first token, next to their ttft: what the server spent and what was waiting."""
    tail = sorted(traced, key=lambda t: t[0])[-max(1, len(traced) // 100) :] if traced else []
    keys = sorted({k for _, t in tail for k in t})
    report = {"ttft": round(statistics.median(t for t, _ in tail), 1)} if tail else {}
    for key in keys:
        values = [t[key] for _, t in tail if key in t]
        report[key] = round(statistics.median(values), 1)
    return report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _own_rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def rss_kinds_kb(pid: int) -> dict[str, int]:
    """A process's resident set by kind: anonymous (its heap: grows only with what it
    keeps) and file-backed (mapped files such as the vector store's segments: page cache
    the kernel takes back under memory pressure)."""
    try:
        return {kind: _own_rss_kb(pid, f"Rss{kind.title()}") for kind in ("anon", "file")}
    except (FileNotFoundError, ProcessLookupError):
        return {}


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(c) for task in tasks for c in (task / "children").read_text().split()]


def rss_split_kb(pid: int) -> dict[str, int]:
    """Resident set of the server process alone and of each of its worker processes."""
    try:
        return {"server": _own_rss_kb(pid), **{f"worker {c}": rss_kb(c) for c in _children(pid)}}
    except (FileNotFoundError, ProcessLookupError):
        return {}


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server process, by its worker processes (if it
    has any), by this process (the clients), and by every PostgreSQL and Redis server
    process on the machine."""
    parts = {"server": _cpu_s(server_pid), "workers": 0.0, "clients": time.process_time()}
    try:
        parts["workers"] = sum(_cpu_s(c) for c in _children(server_pid))
    except (FileNotFoundError, ProcessLookupError):
        pass
    for name in ("postgres", "redis-server"):
        parts[name] = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if comm in ("postgres", "redis-server"):
                parts[comm] += _cpu_s(int(entry.name))
    return parts


def rss_kb(pid: int) -> int:
    """Resident set of the server: the process and its workers, if it has any."""
    return sum(rss_split_kb(pid).values())


async def database_activity(database_url: str) -> dict[str, float]:
    """Counters of this database since its creation: transactions and rows touched."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        cur = await conn.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_fetched"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        row = await cur.fetchone()
    assert row is not None
    names = ("transactions", "rows_inserted", "rows_updated", "rows_fetched")
    return {k: float(v) for k, v in zip(names, row, strict=True)}


TURN_PURPOSES = ("query", "line")
"""What a turn's own texts are embedded for (``memory.types.TURN_PURPOSES``): the user's
line for the search and the reply; speakers' vectors, the trait prototypes and anything
else are background."""


def embedder_report(folder: Path, fake: bool, turns: int = 0) -> dict[str, Any]:
    """Which embedder the server ran, and what it did: encode calls, texts, cache hits
    and how many calls had each batch size, summed over the serving processes (the
    trait scorer's prototypes, embedded once at start-up, are one call each), and the
    texts sent to be encoded per turn: the turn's own, and the background apart."""
    parts = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
    report: dict[str, Any] = {
        "kind": "fake (no trait scorer)" if fake else "real, with the trait scorer",
        "backend": sorted({p.get("backend", "?") for p in parts}),
        "dim": parts[0]["dim"] if parts else 0,
        "processes": len(parts),
    }
    if not fake and parts:
        sizes: Counter[int] = Counter()
        for part in parts:
            sizes.update({int(k): v for k, v in part.get("sizes", {}).items()})
        calls = sum(p["calls"] for p in parts)
        texts = sum(p["texts"] for p in parts)
        purposes: Counter[str] = Counter()
        for part in parts:
            purposes.update(part.get("purposes", {}))
        own = sum(purposes[p] for p in TURN_PURPOSES)
        report |= {
            "texts_per_turn": round(own / max(1, turns), 2),
            "background_texts_per_turn": round((purposes.total() - own) / max(1, turns), 2),
            "texts_by_purpose": dict(sorted(purposes.items())),
            "calls": calls,
            "texts": texts,
            "cache_hits": sum(p["cache_hits"] for p in parts),
            "mean_batch": round(texts / calls, 2) if calls else 0.0,
            "largest": max(p["largest"] for p in parts),
            "batch_sizes": {str(k): v for k, v in sorted(sizes.items())},
        }
    return report


async def audit_store(database_url: str, stats: Stats, home: Path, dim: int) -> dict[str, Any]:
    """Every acked user message and every message.done is in PostgreSQL exactly once."""
    acked_ids = [m for _, m in stats.acked]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT id::text, role, reply_to::text FROM messages"
            " WHERE id = ANY(%s::uuid[]) OR reply_to = ANY(%s::uuid[])",
            (acked_ids, acked_ids),
        )
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT session_id, client_msg_id, count(*) FROM messages WHERE role = 'user'"
            " GROUP BY 1, 2 HAVING count(*) > 1"
        )
        duplicated_users = len(await cur.fetchall())
        cur = await conn.execute(
            "SELECT reply_to, persona_id, count(*) FROM messages WHERE role = 'persona'"
            " GROUP BY 1, 2 HAVING count(*) > 1"
        )
        duplicated_replies = len(await cur.fetchall())
    stored_users = {r[0] for r in rows if r[1] == "user"}
    stored_replies = {r[0] for r in rows if r[1] == "persona"}
    done_ids = set(stats.done)
    return {
        "acked_user_messages": len(acked_ids),
        "acked_missing_in_db": len(set(acked_ids) - stored_users),
        "done_replies": len(stats.done),
        "done_duplicates_seen": len(stats.done) - len(done_ids),
        "done_missing_in_db": len(done_ids - stored_replies),
        "duplicate_user_messages_in_db": duplicated_users,
        "duplicate_replies_in_db": duplicated_replies,
        "replies_with_memory": await count_reply_memories(home, database_url, done_ids, dim),
    }


async def count_reply_memories(home: Path, database_url: str, reply_ids: set[str], dim: int) -> int:
    """How many of the replies have their memory in Qdrant Edge (the server has stopped)."""
    from memory import EdgeMemoryIndex, MemoryFilter

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT id FROM personas WHERE slug = 'load-tutor'")
        row = await cur.fetchone()
    assert row is not None
    found: set[str] = set()
    async with EdgeMemoryIndex(home / "qdrant", dim=dim) as index:
        cursor = None
        while True:
            page = await index.list_memories(
                MemoryFilter(persona_id=str(row[0])), limit=1000, cursor=cursor
            )
            for record in page.records:
                if record.speaker_role == "persona":
                    found.add(str(record.metadata.get("message_id")))
            cursor = page.next_cursor
            if cursor is None:
                break
    return len(found & reply_ids)
