"""The vector memory seam, and the code both Qdrant backends share.

:class:`VectorIndex` is what the rest of Personae uses; :mod:`memory.vector.edge` (embedded
Qdrant Edge) and :mod:`memory.vector.qdrant_server` (a Qdrant server) implement it with the
same behaviour. A backend only translates :class:`Conditions` into its filter type and
runs queries; payload layout, paging cursors and the hybrid search pipeline live here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np

from memory.errors import DimensionMismatch, InvalidMemory, MemoryNotFound
from memory.types import (
    JSONValue,
    Matrix,
    MemoryFilter,
    MemoryKind,
    MemoryPage,
    MemoryQuery,
    MemoryRecord,
    ScoredMemory,
    as_utc,
    check_importance,
    utc_now,
)
from memory.vector.keywords import SparseTerms, query_terms
from memory.vector.scoring import Candidate, ScoringWeights, rank, set_aside

DENSE = "dense"
KEYWORDS = "keywords"
KEYWORD_INDEXED = ("scope", "user_id", "session_id", "kind", "act")
"""Keyword payload indexes besides ``persona_id`` (the tenant index); ``created_at`` has a
datetime index and ``pinned`` (0/1) an integer lookup index. ``scope`` is persona and
user in one key (see :func:`scope_key`); ``act`` lets searches leave out questions. A
store opened without one of them gets it then."""


def scope_key(persona_id: str, user_id: str) -> str:
    """One keyword for "this user with this persona", unambiguous for any ids.

    A chat search filters on it alone: one exact index lookup instead of intersecting
    the persona and user indexes (measured in docs/memory.md)."""
    return f"{len(persona_id)}:{persona_id}/{user_id}"


class VectorIndex(Protocol):
    """Long-term memory of personas: store records with embeddings, search, inspect, forget.

    Open with ``async with``. Every read is scoped to one persona; pass ``user_id`` to
    scope to one user (the chat path always does). Id-based calls take an optional
    ``persona_id``/``user_id`` scope so an inspection request cannot touch another
    user's memories.
    """

    @property
    def dim(self) -> int: ...

    async def upsert(self, records: Sequence[MemoryRecord], vectors: Matrix) -> None: ...

    async def search(
        self, query: MemoryQuery, weights: ScoringWeights | None = None
    ) -> list[ScoredMemory]: ...

    async def list_memories(
        self, where: MemoryFilter, *, limit: int = 50, cursor: str | None = None
    ) -> MemoryPage: ...

    async def get(
        self, memory_id: uuid.UUID, *, persona_id: str | None = None, user_id: str | None = None
    ) -> MemoryRecord | None: ...

    async def delete(
        self,
        memory_ids: Sequence[uuid.UUID],
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None: ...

    async def forget_session(self, session_id: str, *, persona_id: str | None = None) -> int: ...

    async def forget_user(self, user_id: str, *, persona_id: str | None = None) -> int: ...

    async def set_pinned(
        self,
        memory_id: uuid.UUID,
        pinned: bool,
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None: ...

    async def set_importance(
        self,
        memory_id: uuid.UUID,
        importance: float,
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None: ...

    async def set_metadata(
        self,
        memory_id: uuid.UUID,
        values: dict[str, Any],
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None: ...

    async def count(self, persona_id: str, user_id: str | None = None) -> int: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PayloadSetters:
    """``set_pinned``/``set_importance`` for both backends: each checks the memory is in
    scope, then writes the payload the backend's way (:meth:`_set_payload`)."""

    async def get(
        self, memory_id: uuid.UUID, *, persona_id: str | None = None, user_id: str | None = None
    ) -> MemoryRecord | None:
        raise NotImplementedError

    async def _set_payload(self, memory_id: uuid.UUID, values: dict[str, Any]) -> None:
        raise NotImplementedError

    async def set_pinned(
        self,
        memory_id: uuid.UUID,
        pinned: bool,
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Pin (always retrieve) or unpin a memory; :class:`MemoryNotFound` if not in scope."""
        await self._set(memory_id, {"pinned": int(pinned)}, persona_id, user_id)

    async def set_importance(
        self,
        memory_id: uuid.UUID,
        importance: float,
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        await self._set(
            memory_id, {"importance": check_importance(importance)}, persona_id, user_id
        )

    async def set_metadata(
        self,
        memory_id: uuid.UUID,
        values: dict[str, Any],
        *,
        persona_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Merge ``values`` into a memory's metadata; :class:`MemoryNotFound` if not in scope."""
        record = await self.get(memory_id, persona_id=persona_id, user_id=user_id)
        if record is None:
            raise MemoryNotFound(memory_id)
        await self._set_payload(memory_id, {"metadata": {**record.metadata, **values}})

    async def _set(
        self,
        memory_id: uuid.UUID,
        values: dict[str, Any],
        persona_id: str | None,
        user_id: str | None,
    ) -> None:
        if await self.get(memory_id, persona_id=persona_id, user_id=user_id) is None:
            raise MemoryNotFound(memory_id)
        await self._set_payload(memory_id, values)


# ---- filters -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conditions:
    """A backend-neutral conjunction of payload conditions (``None`` = unconstrained)."""

    persona_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    kinds: frozenset[MemoryKind] | None = None
    since: datetime | None = None
    until: datetime | None = None
    pinned: bool | None = None
    ids: frozenset[uuid.UUID] | None = None
    exclude_ids: frozenset[uuid.UUID] | None = None
    exclude_acts: tuple[str, ...] = ()
    """Leave out memories whose ``act`` is one of these (searches leave out questions:
    :data:`memory.types.UNSEARCHED_ACTS`)."""

    @classmethod
    def of(cls, where: MemoryFilter) -> Conditions:
        return cls(
            persona_id=where.persona_id,
            user_id=where.user_id,
            session_id=where.session_id,
            kinds=where.kinds,
            since=where.since,
            until=where.until,
            pinned=where.pinned,
        )

    def equals(self) -> list[tuple[str, str | int]]:
        """Exact-match conditions; ``pinned`` is stored as 0/1 (see :func:`to_payload`)."""
        if self.persona_id is not None and self.user_id is not None:
            scoped: list[tuple[str, str | int | None]] = [
                ("scope", scope_key(self.persona_id, self.user_id))
            ]
        else:
            scoped = [("persona_id", self.persona_id), ("user_id", self.user_id)]
        pairs: list[tuple[str, str | int | None]] = [
            *scoped,
            ("session_id", self.session_id),
            ("pinned", None if self.pinned is None else int(self.pinned)),
        ]
        return [(key, value) for key, value in pairs if value is not None]


# ---- payload codec -------------------------------------------------------------------


def to_payload(record: MemoryRecord) -> dict[str, JSONValue]:
    """The stored payload. ``pinned`` is 0/1, not a bool: qdrant-edge-py 0.9 turns
    ``MatchValue(True)`` into the integer 1, which never matches a JSON ``true``."""
    return {
        "persona_id": record.persona_id,
        "user_id": record.user_id,
        "scope": scope_key(record.persona_id, record.user_id),
        "session_id": record.session_id,
        "speaker_name": record.speaker_name,
        "speaker_role": record.speaker_role,
        "text": record.text,
        "kind": record.kind,
        "importance": record.importance,
        "created_at": iso(record.created_at),
        "pinned": int(record.pinned),
        "external_id": record.external_id,
        "metadata": dict(record.metadata),
        "context": list(record.context),
        # top level, so that a search can leave out questions by filter
        "act": record.metadata.get("act") if record.metadata else None,
    }


def from_payload(point_id: uuid.UUID | str | int, payload: Mapping[str, Any]) -> MemoryRecord:
    return MemoryRecord(
        id=as_uuid(point_id),
        persona_id=payload["persona_id"],
        user_id=payload["user_id"],
        session_id=payload.get("session_id"),
        speaker_name=payload.get("speaker_name", ""),
        speaker_role=payload["speaker_role"],
        text=payload.get("text", ""),
        kind=payload["kind"],
        importance=float(payload["importance"]),
        created_at=datetime.fromisoformat(payload["created_at"]),
        pinned=bool(payload.get("pinned", False)),
        external_id=payload.get("external_id"),
        metadata=payload.get("metadata") or {},
        context=tuple(payload.get("context") or ()),
    )


def as_uuid(point_id: uuid.UUID | str | int) -> uuid.UUID:
    if isinstance(point_id, uuid.UUID):
        return point_id
    if isinstance(point_id, str):
        return uuid.UUID(point_id)
    raise InvalidMemory("id", f"point id {point_id!r} is not a UUID")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def check_vectors(records: Sequence[MemoryRecord], vectors: Matrix, dim: int) -> Matrix:
    """``vectors`` as a C-contiguous float32 ``(len(records), dim)`` matrix."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(records):
        raise InvalidMemory(
            "vectors", f"need one row per record ({len(records)}), got shape {matrix.shape}"
        )
    if matrix.shape[1] != dim:
        raise DimensionMismatch("upsert", dim, matrix.shape[1])
    if not np.all(np.isfinite(matrix)):
        raise InvalidMemory("vectors", "contain NaN or infinity")
    return matrix


def check_query(query: MemoryQuery, dim: int) -> None:
    if query.vector.shape[0] != dim:
        raise DimensionMismatch("search", dim, query.vector.shape[0])


# ---- newest-first paging -------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Resume point of a newest-first listing: everything at or before ``micros`` except
    ``seen``, the records stamped exactly ``micros`` that earlier pages returned.

    Qdrant orders equal timestamps differently from one query to the next, so ties are
    excluded by id rather than skipped by count; ``seen`` is one id unless many memories
    share a microsecond (a bulk import with one timestamp).
    """

    micros: int
    seen: frozenset[uuid.UUID]

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            stamp, _, ids = text.partition(":")
            value = int(stamp)
            if not 0 <= value <= _MAX_MICROS:
                raise ValueError("out of range")
            return cls(value, frozenset(uuid.UUID(hex=i) for i in ids.split(",") if i))
        except ValueError:
            raise InvalidMemory(
                "cursor", f"{text[:80]!r} is not a cursor this index gave out"
            ) from None

    def encode(self) -> str:
        return f"{self.micros}:" + ",".join(sorted(i.hex for i in self.seen))

    @property
    def until(self) -> datetime:
        return _EPOCH + self.micros * _MICRO


_MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


def listing_conditions(where: MemoryFilter, after: Cursor | None) -> Conditions:
    conditions = Conditions.of(where)
    if after is None:
        return conditions
    until = after.until if where.until is None or after.until < where.until else where.until
    return replace(conditions, until=until, exclude_ids=after.seen or None)


def make_page(rows: Sequence[MemoryRecord], limit: int, after: Cursor | None) -> MemoryPage:
    """Build a page from up to ``limit + 1`` newest-first rows fetched after ``after``."""
    page = tuple(rows[:limit])
    if len(rows) <= limit or not page:
        return MemoryPage(page, None)
    last = micros(page[-1].created_at)
    seen = {r.id for r in page if micros(r.created_at) == last}
    if after is not None and after.micros == last:
        seen |= after.seen
    return MemoryPage(page, Cursor(last, frozenset(seen)).encode())


# ---- hybrid search -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    score: float
    record: MemoryRecord


@dataclass(frozen=True, slots=True)
class FirstPass:
    """Candidates: nearest by meaning, best by keywords, and pinned (nearest first)."""

    dense: Sequence[Hit]
    keyword: Sequence[Hit]
    pinned: Sequence[Hit]


class CandidateSource(Protocol):
    """What a backend provides to :func:`hybrid_search`."""

    async def first_pass(
        self, query: MemoryQuery, terms: SparseTerms, weights: ScoringWeights
    ) -> FirstPass: ...

    async def exact_scores(
        self,
        query: MemoryQuery,
        terms: SparseTerms,
        dense_ids: frozenset[uuid.UUID],
        keyword_ids: frozenset[uuid.UUID],
    ) -> tuple[dict[uuid.UUID, float], dict[uuid.UUID, float]]:
        """Cosine scores of ``dense_ids`` and BM25 scores of ``keyword_ids`` (ids with no
        shared term may be left out: their score is 0)."""
        ...


_REFETCHES = 3
"""At most this many more fetches when set-aside lines take candidate places."""


async def hybrid_search(
    source: CandidateSource, query: MemoryQuery, weights: ScoringWeights
) -> list[ScoredMemory]:
    """Fetch candidates from the store, complete their scores, rank them.

    Stage 1 (one batched call): dense top-N, keyword top-M, pinned top-P, all with the
    query's scope filter. Stage 2 (only when needed, one batched call): the cosine of
    candidates found only by keywords or pinning, and the BM25 of candidates found only
    by meaning -- restricted by id, so both are exact. Then :func:`memory.vector.scoring.rank`.
    """
    terms = query_terms(query.text)
    first = await source.first_pass(query, terms, weights)
    # questions, answers and other set-aside lines rank after everything: when they took
    # places in a full candidate list, fetch that many more (again while more of them
    # come in), so that the evidence found is what it would be without them
    base = weights
    for _ in range(_REFETCHES):
        dense_aside = sum(set_aside(h.record) for h in first.dense)
        keyword_aside = sum(set_aside(h.record) for h in first.keyword)
        more_dense = len(first.dense) >= weights.dense_candidates and (
            base.dense_candidates + dense_aside > weights.dense_candidates
        )
        more_keyword = len(first.keyword) >= weights.keyword_candidates and (
            base.keyword_candidates + keyword_aside > weights.keyword_candidates
        )
        if not (more_dense or more_keyword):
            break
        weights = replace(
            weights,
            dense_candidates=base.dense_candidates + dense_aside,
            keyword_candidates=base.keyword_candidates + keyword_aside,
        )
        first = await source.first_pass(query, terms, weights)
    # keyed by the id's integer: a UUID hashes and compares in Python, an int in C
    records: dict[int, MemoryRecord] = {}
    cosine: dict[int, float] = {}
    bm25: dict[int, float] = {}
    for hit in (*first.dense, *first.pinned):
        key = hit.record.id.int
        cosine[key] = hit.score
        records[key] = hit.record
    for hit in first.keyword:
        key = hit.record.id.int
        bm25[key] = hit.score
        records[key] = hit.record
    need_cosine = frozenset(records[key].id for key in records.keys() - cosine.keys())
    keyword_list_full = len(first.keyword) >= weights.keyword_candidates
    need_bm25 = (
        frozenset(records[key].id for key in records.keys() - bm25.keys())
        if terms and keyword_list_full
        else frozenset()
    )
    if need_cosine or need_bm25:
        more_cosine, more_bm25 = await source.exact_scores(query, terms, need_cosine, need_bm25)
        cosine.update((memory_id.int, score) for memory_id, score in more_cosine.items())
        bm25.update((memory_id.int, score) for memory_id, score in more_bm25.items())
    candidates = [
        Candidate(record, cosine.get(key, 0.0), bm25.get(key, 0.0))
        for key, record in records.items()
    ]
    now = query.now or utc_now()
    return rank(candidates, weights, k=query.k, now=as_utc(now, "now"), query=query.text)
