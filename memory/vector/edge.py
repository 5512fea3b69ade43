"""Embedded vector memory on Qdrant Edge (``qdrant_edge.EdgeShard``), the default store.

One shard in one folder (``$PERSONAE_HOME/qdrant``) holds every persona's memories;
``persona_id`` is a tenant keyword index, so a persona's search touches only its points.

Edge calls are synchronous. Writes (upserts, deletes, payload updates, flush, optimize)
run on one worker thread, which keeps them in order; upserts go in chunks so the event
loop gets the GIL back between them. Reads release the GIL and take well under a
millisecond, so by default they run inline: a thread hop would cost more than it saves
(see docs/memory.md). ``optimize()`` builds the HNSW graphs and holds the GIL while it
does (minutes at 100k points on 2 cores): run it at start-up or from maintenance, not
while serving. Unoptimized segments are searched exactly through the payload indexes.

Searches ask the shard for ids and scores only: turning stored payloads into Python
objects cost more than the search itself. Records come from an in-process LRU of recent
memories (``records_cached``), filled by this index's own upserts and, on a miss, by one
``retrieve``. Every write through this index updates or drops what it changes; the
shard has no other writer (one process opens a folder).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import qdrant_edge as qe

from memory.errors import IndexNotOpen, IndexUnavailable, MemoryLayerError
from memory.types import (
    UNSEARCHED_ACTS,
    Matrix,
    MemoryFilter,
    MemoryPage,
    MemoryQuery,
    MemoryRecord,
    ScoredMemory,
)
from memory.vector.index import (
    DENSE,
    KEYWORD_INDEXED,
    KEYWORDS,
    Conditions,
    Cursor,
    FirstPass,
    Hit,
    PayloadSetters,
    as_uuid,
    check_query,
    check_vectors,
    from_payload,
    hybrid_search,
    iso,
    listing_conditions,
    make_page,
    to_payload,
)
from memory.vector.keywords import SparseTerms, document_terms
from memory.vector.scoring import ScoringWeights

log = logging.getLogger(__name__)
T = TypeVar("T")
_BACKEND = "qdrant-edge"
_CONFIG_FILE = "edge_config.json"
UPSERT_CHUNK = 256
SMALL_WRITE = 8  # points an upsert may have to run inline (see _write)
RECORDS_CACHED = 20_000  # recent memories kept as records (about 1 KB each)


class EdgeMemoryIndex(PayloadSetters):
    """Vector memory in an embedded Qdrant Edge shard stored under ``path``.

    Use for a single process (the embedded default). Data survives close and reopen;
    opening with a different ``dim`` fails with :class:`IndexUnavailable` (re-embed
    into a new folder when the embedding model changes).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        dim: int,
        weights: ScoringWeights | None = None,
        offload_reads: bool = False,
        records_cached: int = RECORDS_CACHED,
    ) -> None:
        self._path = Path(path)
        self._dim = dim
        self._weights = weights or ScoringWeights()
        self._offload_reads = offload_reads
        self._shard: qe.EdgeShard | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._writes_queued = 0
        # keyed by the id's integer: a UUID hashes and compares in Python, an int in C
        self._records: OrderedDict[int, MemoryRecord] = OrderedDict()
        self._records_cached = records_cached
        # bumped after every write: a read that began before it does not fill the cache
        # (it may hold what the write replaced)
        self._epoch = 0

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> Self:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-edge-write")
        if self._offload_reads:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-edge-read")
        try:
            self._shard = await asyncio.get_running_loop().run_in_executor(self._writer, self._open)
        except BaseException:
            self._shutdown_executors()
            raise
        log.info("memory index open: backend=%s path=%s dim=%d", _BACKEND, self._path, self._dim)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shard, self._shard = self._shard, None
        if shard is not None and self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer, _close, shard)
        self._shutdown_executors()
        log.info("memory index closed: backend=%s path=%s", _BACKEND, self._path)

    def _open(self) -> qe.EdgeShard:
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self._dim, distance=qe.Distance.Cosine)},
            sparse_vectors={KEYWORDS: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # payload reads dominated searches when left on disk (Cold; docs/memory.md)
            payload_memory=qe.Memory.Cached,
        )
        try:
            # the store holds chat text: its folder is its owner's alone (one made
            # by an earlier version with the umask's mode is narrowed)
            if not self._path.exists():
                self._path.mkdir(parents=True, mode=0o700)
                os.chmod(self._path, 0o700)
            elif self._path.stat().st_uid == os.getuid():
                os.chmod(self._path, 0o700)
            if (self._path / _CONFIG_FILE).exists():
                shard = qe.EdgeShard.load(str(self._path), config)
            else:
                shard = qe.EdgeShard.create(str(self._path), config)
        except OSError as exc:
            raise IndexUnavailable(
                _BACKEND, f"cannot use folder {str(self._path)!r}: {exc}"
            ) from exc
        except Exception as exc:  # qdrant_edge raises bare Exception
            raise IndexUnavailable(
                _BACKEND, f"cannot open shard at {str(self._path)!r}: {exc}"
            ) from exc
        existing = shard.info().payload_schema
        wanted: dict[str, Any] = {
            "persona_id": qe.KeywordIndexParams(is_tenant=True),
            **{key: qe.PayloadSchemaType.Keyword for key in KEYWORD_INDEXED},
            "created_at": qe.PayloadSchemaType.Datetime,
            "pinned": qe.IntegerIndexParams(lookup=True, range=False),
        }
        for field, schema in wanted.items():
            if field not in existing:
                shard.update(qe.UpdateOperation.create_field_index(field, schema))
        return shard

    def _shutdown_executors(self) -> None:
        for pool in (self._writer, self._reader):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._reader = None

    # ---- plumbing ---------------------------------------------------------------------

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise IndexNotOpen(_BACKEND)
        return self._shard

    async def _write(self, op: str, fn: Callable[[qe.EdgeShard], T], *, small: bool = False) -> T:
        """Run a write on the writer thread, in order. A ``small`` one (a turn's few
        points) runs inline when no other write is queued or running: the hop to the
        thread and back cost more than the write, which holds the GIL anyway."""
        shard = self._require()
        assert self._writer is not None
        if small and not self._writes_queued:
            return _guarded(op, fn, shard)
        self._writes_queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._writer, _guarded, op, fn, shard
            )
        finally:
            self._writes_queued -= 1

    async def _read(self, op: str, fn: Callable[[qe.EdgeShard], T]) -> T:
        shard = self._require()
        if self._reader is None:
            return _guarded(op, fn, shard)
        return await asyncio.get_running_loop().run_in_executor(
            self._reader, _guarded, op, fn, shard
        )

    # ---- writes -----------------------------------------------------------------------

    async def upsert(self, records: Sequence[MemoryRecord], vectors: Matrix) -> None:
        """Store records with their embeddings (rows of ``vectors``); same id replaces."""
        matrix = check_vectors(records, vectors, self._dim)
        for start in range(0, len(records), UPSERT_CHUNK):
            chunk = records[start : start + UPSERT_CHUNK]
            rows = matrix[start : start + UPSERT_CHUNK]
            payloads = [to_payload(record) for record in chunk]
            points = [
                _point(record, row.tolist(), payload)
                for record, row, payload in zip(chunk, rows, payloads, strict=True)
            ]
            try:
                await self._write(
                    "upsert",
                    partial(_apply, qe.UpdateOperation.upsert_points(points)),
                    small=len(points) <= SMALL_WRITE,
                )
            finally:
                self._changed(record.id for record in chunk)
            # cached as a read would give them back (created_at in UTC, say)
            self._remember(
                from_payload(record.id, payload)
                for record, payload in zip(chunk, payloads, strict=True)
            )

    async def delete(
        self,
        memory_ids: Sequence[uuid.UUID],
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Delete memories by id; with a scope, ids outside it are left alone."""
        if not memory_ids:
            return
        where = Conditions(persona_id=persona_id, user_id=user_id, ids=frozenset(memory_ids))
        operation = qe.UpdateOperation.delete_points_by_filter(_filter(where))
        try:
            await self._write("delete", lambda shard: shard.update(operation))
        finally:
            self._changed(memory_ids)

    async def forget_session(self, session_id: str, *, persona_id: str | None = None) -> int:
        """Delete every memory of a session (of one persona, or of all); returns how many."""
        return await self._delete_where(Conditions(persona_id=persona_id, session_id=session_id))

    async def forget_user(self, user_id: str, *, persona_id: str | None = None) -> int:
        """Delete every memory of a user (with one persona, or with all); returns how many."""
        return await self._delete_where(Conditions(persona_id=persona_id, user_id=user_id))

    async def _delete_where(self, where: Conditions) -> int:
        flt = _filter(where)

        def run(shard: qe.EdgeShard) -> int:
            found = shard.count(qe.CountRequest(exact=True, filter=flt))
            if found:
                shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
            return found

        try:
            return await self._write("forget", run)
        finally:
            self._changed(None)

    async def _set_payload(self, memory_id: uuid.UUID, values: dict[str, Any]) -> None:
        operation = qe.UpdateOperation.set_payload([memory_id], values)
        try:
            await self._write("set_payload", lambda shard: shard.update(operation))
        finally:
            self._changed([memory_id])

    # ---- cached records ---------------------------------------------------------------

    def _changed(self, ids: Iterable[uuid.UUID] | None) -> None:
        """Forget cached records a write changed (``None``: every record)."""
        self._epoch += 1
        if ids is None:
            self._records.clear()
            return
        for memory_id in ids:
            self._records.pop(memory_id.int, None)

    def _remember(self, records: Iterable[MemoryRecord]) -> None:
        cache = self._records
        for record in records:
            key = record.id.int
            cache[key] = record
            cache.move_to_end(key)
        while len(cache) > self._records_cached:
            cache.popitem(last=False)

    async def _records_for(self, ids: Iterable[uuid.UUID]) -> dict[int, MemoryRecord]:
        """The records of ``ids`` that exist, by their id's integer: from the cache, the
        rest in one read."""
        cache = self._records
        found: dict[int, MemoryRecord] = {}
        missing: list[uuid.UUID] = []
        for memory_id in ids:
            key = memory_id.int
            record = cache.get(key)
            if record is None:
                missing.append(memory_id)
            else:
                cache.move_to_end(key)
                found[key] = record
        if missing:
            epoch = self._epoch
            wanted: list[int | uuid.UUID | str] = list(missing)
            read = await self._read("retrieve", lambda shard: shard.retrieve(wanted, True, False))
            fresh = [from_payload(p.id, p.payload) for p in read if p.payload is not None]
            if epoch == self._epoch:
                self._remember(fresh)
            found.update((record.id.int, record) for record in fresh)
        return found

    async def optimize(self) -> bool:
        """Merge segments and build HNSW graphs; returns whether anything changed.

        Blocks this process's Python threads while it runs (the binding keeps the GIL).
        """
        return await self._write("optimize", lambda shard: shard.optimize())

    async def flush(self) -> None:
        await self._write("flush", lambda shard: shard.flush())

    # ---- reads ------------------------------------------------------------------------

    async def search(
        self, query: MemoryQuery, weights: ScoringWeights | None = None
    ) -> list[ScoredMemory]:
        """Hybrid retrieval (meaning + keywords + recency + importance, pinned kept)."""
        check_query(query, self._dim)
        return await hybrid_search(self, query, weights or self._weights)

    async def first_pass(
        self, query: MemoryQuery, terms: SparseTerms, weights: ScoringWeights
    ) -> FirstPass:
        scope = replace(Conditions.of(query.as_filter()), exclude_acts=UNSEARCHED_ACTS)
        dense = query.vector.tolist()
        requests = [_nearest(dense, DENSE, scope, weights.dense_candidates, False)]
        if terms:
            requests.append(
                _nearest(_sparse(terms), KEYWORDS, scope, weights.keyword_candidates, False)
            )
        if weights.pinned_limit:
            pinned = replace(scope, pinned=True)
            requests.append(_nearest(dense, DENSE, pinned, weights.pinned_limit, False))
        batch = qe.QueryBatchRequest(requests)
        results = await self._read("search", lambda shard: shard.query_batch(batch))
        ids = [[as_uuid(p.id) for p in found] for found in results]
        records = await self._records_for({i for found in ids for i in found})
        hits = [
            [
                Hit(p.score, record)
                for p, i in zip(found, found_ids, strict=True)
                if (record := records.get(i.int)) is not None
            ]
            for found, found_ids in zip(results, ids, strict=True)
        ]
        return FirstPass(
            dense=hits[0],
            keyword=hits[1] if terms else [],
            pinned=hits[-1] if weights.pinned_limit else [],
        )

    async def exact_scores(
        self,
        query: MemoryQuery,
        terms: SparseTerms,
        dense_ids: frozenset[uuid.UUID],
        keyword_ids: frozenset[uuid.UUID],
    ) -> tuple[dict[uuid.UUID, float], dict[uuid.UUID, float]]:
        requests = []
        if dense_ids:
            requests.append(
                _nearest(
                    query.vector.tolist(), DENSE, Conditions(ids=dense_ids), len(dense_ids), False
                )
            )
        if keyword_ids:
            requests.append(
                _nearest(
                    _sparse(terms), KEYWORDS, Conditions(ids=keyword_ids), len(keyword_ids), False
                )
            )
        batch = qe.QueryBatchRequest(requests)
        results = await self._read("rescore", lambda shard: shard.query_batch(batch))
        scores = [{as_uuid(p.id): p.score for p in found} for found in results]
        cosine = scores.pop(0) if dense_ids else {}
        bm25 = scores.pop(0) if keyword_ids else {}
        return cosine, bm25

    async def list_memories(
        self, where: MemoryFilter, *, limit: int = 50, cursor: str | None = None
    ) -> MemoryPage:
        """Memories matching ``where``, newest first, ``limit`` per page."""
        after = Cursor.decode(cursor) if cursor else None
        request = qe.QueryRequest(
            limit=limit + 1,
            query=qe.OrderBy("created_at", direction=qe.Direction.Desc),
            filter=_filter(listing_conditions(where, after)),
            with_payload=True,
        )
        found = await self._read("list", lambda shard: shard.query(request))
        return make_page([from_payload(p.id, p.payload or {}) for p in found], limit, after)

    async def get(
        self, memory_id: uuid.UUID, *, persona_id: str | None = None, user_id: str | None = None
    ) -> MemoryRecord | None:
        """The memory with this id, or ``None`` if absent or outside the given scope."""
        record = (await self._records_for([memory_id])).get(memory_id.int)
        if record is None:
            return None
        if persona_id is not None and record.persona_id != persona_id:
            return None
        if user_id is not None and record.user_id != user_id:
            return None
        return record

    async def count(self, persona_id: str, user_id: str | None = None) -> int:
        where = Conditions(persona_id=persona_id, user_id=user_id)
        request = qe.CountRequest(exact=True, filter=_filter(where))
        return await self._read("count", lambda shard: shard.count(request))


def _guarded(op: str, fn: Callable[[qe.EdgeShard], T], shard: qe.EdgeShard) -> T:
    try:
        return fn(shard)
    except MemoryLayerError:
        raise
    except Exception as exc:  # qdrant_edge raises bare Exception; name the operation
        raise IndexUnavailable(_BACKEND, f"{op} failed: {exc}") from exc


def _apply(operation: qe.UpdateOperation, shard: qe.EdgeShard) -> None:
    shard.update(operation)


def _close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


def _point(record: MemoryRecord, dense: list[float], payload: dict[str, Any]) -> qe.Point:
    vectors: dict[str, Any] = {DENSE: dense}
    terms = document_terms(record.keyword_document)
    if terms:
        vectors[KEYWORDS] = _sparse(terms)
    return qe.Point(record.id, vectors, payload)


def _sparse(terms: SparseTerms) -> qe.SparseVector:
    return qe.SparseVector(indices=list(terms.indices), values=list(terms.values))


def _nearest(
    vector: list[float] | qe.SparseVector,
    using: str,
    where: Conditions,
    limit: int,
    with_payload: bool = True,
) -> qe.QueryRequest:
    return qe.QueryRequest(
        limit=limit,
        query=qe.Query.Nearest(vector, using=using),
        filter=_filter(where),
        with_payload=with_payload,
    )


def _filter(where: Conditions) -> qe.Filter:
    must: list[Any] = [
        qe.FieldCondition(key=key, match=qe.MatchValue(value)) for key, value in where.equals()
    ]
    if where.kinds is not None:
        must.append(
            qe.FieldCondition(
                key="kind", match=qe.MatchAny([str(kind) for kind in sorted(where.kinds)])
            )
        )
    if where.since is not None or where.until is not None:
        span = qe.RangeDateTime(
            gte=iso(where.since) if where.since else None,
            lte=iso(where.until) if where.until else None,
        )
        must.append(qe.FieldCondition(key="created_at", range=span))
    if where.ids is not None:
        must.append(qe.HasIdCondition(set(where.ids)))
    must_not: list[Any] = []
    if where.exclude_ids:
        must_not.append(qe.HasIdCondition(set(where.exclude_ids)))
    if where.exclude_acts:
        must_not.append(qe.FieldCondition(key="act", match=qe.MatchAny(list(where.exclude_acts))))
    if must_not:
        return qe.Filter(must=must, must_not=must_not)
    return qe.Filter(must=must)
