"""Vector memory on a Qdrant server through ``qdrant_client.AsyncQdrantClient``.

Production counterpart of :mod:`memory.vector.edge` with the same behaviour: one collection
holds every persona's memories, ``persona_id`` is a tenant keyword index. ``url=":memory:"``
runs qdrant-client's local emulation (tests only: it is pure Python, ignores payload
indexes and is far too slow as a store).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ApiException

from memory.errors import IndexNotOpen, IndexUnavailable
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
    listing_conditions,
    make_page,
    to_payload,
)
from memory.vector.keywords import SparseTerms, document_terms
from memory.vector.scoring import ScoringWeights

log = logging.getLogger(__name__)
_BACKEND = "qdrant-server"
_LOCAL = ":memory:"
UPSERT_CHUNK = 512


class ServerMemoryIndex(PayloadSetters):
    """Vector memory in collection ``collection`` of the Qdrant server at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        dim: int,
        collection: str = "personae_memories",
        api_key: str | None = None,
        timeout_s: int = 10,
        weights: ScoringWeights | None = None,
    ) -> None:
        self._url = url
        self._dim = dim
        self._collection = collection
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._weights = weights or ScoringWeights()
        self._client: AsyncQdrantClient | None = None

    @property
    def dim(self) -> int:
        return self._dim

    async def __aenter__(self) -> Self:
        if self._url == _LOCAL:
            client = AsyncQdrantClient(location=_LOCAL)
        else:
            client = AsyncQdrantClient(
                url=self._url, api_key=self._api_key, timeout=self._timeout_s
            )
        try:
            await self._ensure_collection(client)
        except BaseException:
            await client.close()
            raise
        self._client = client
        log.info(
            "memory index open: backend=%s collection=%s dim=%d",
            _BACKEND,
            self._collection,
            self._dim,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        log.info("memory index closed: backend=%s collection=%s", _BACKEND, self._collection)

    async def _ensure_collection(self, client: AsyncQdrantClient) -> None:
        try:
            if await client.collection_exists(self._collection):
                info = await client.get_collection(self._collection)
                vectors = info.config.params.vectors
                size = (
                    vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
                )
                if size != self._dim:
                    raise IndexUnavailable(
                        _BACKEND,
                        f"collection {self._collection!r} holds {DENSE!r} vectors of size {size}, "
                        f"not {self._dim}: re-embed into a new collection",
                    )
            else:
                await client.create_collection(
                    self._collection,
                    vectors_config={
                        DENSE: qm.VectorParams(size=self._dim, distance=qm.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        KEYWORDS: qm.SparseVectorParams(modifier=qm.Modifier.IDF)
                    },
                )
            if self._url != _LOCAL:  # local mode warns that payload indexes do nothing
                await self._ensure_indexes(client)
        except (ApiException, OSError) as exc:
            raise IndexUnavailable(_BACKEND, f"{self._url}: {exc}") from exc

    async def _ensure_indexes(self, client: AsyncQdrantClient) -> None:
        schemas: dict[str, Any] = {
            "persona_id": qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
            **{key: qm.PayloadSchemaType.KEYWORD for key in KEYWORD_INDEXED},
            "created_at": qm.PayloadSchemaType.DATETIME,
            "pinned": qm.IntegerIndexParams(
                type=qm.IntegerIndexType.INTEGER, lookup=True, range=False
            ),
        }
        for field, schema in schemas.items():
            await client.create_payload_index(self._collection, field, field_schema=schema)

    def _require(self) -> AsyncQdrantClient:
        if self._client is None:
            raise IndexNotOpen(_BACKEND)
        return self._client

    # ---- writes -----------------------------------------------------------------------

    async def upsert(self, records: Sequence[MemoryRecord], vectors: Matrix) -> None:
        """Store records with their embeddings (rows of ``vectors``); same id replaces."""
        client = self._require()
        matrix = check_vectors(records, vectors, self._dim)
        for start in range(0, len(records), UPSERT_CHUNK):
            chunk = records[start : start + UPSERT_CHUNK]
            rows = matrix[start : start + UPSERT_CHUNK]
            points = [_point(r, row.tolist()) for r, row in zip(chunk, rows, strict=True)]
            await client.upsert(self._collection, points, wait=True)

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
        await self._require().delete(self._collection, qm.FilterSelector(filter=_filter(where)))

    async def forget_session(self, session_id: str, *, persona_id: str | None = None) -> int:
        """Delete every memory of a session (of one persona, or of all); returns how many."""
        return await self._delete_where(Conditions(persona_id=persona_id, session_id=session_id))

    async def forget_user(self, user_id: str, *, persona_id: str | None = None) -> int:
        """Delete every memory of a user (with one persona, or with all); returns how many."""
        return await self._delete_where(Conditions(persona_id=persona_id, user_id=user_id))

    async def _delete_where(self, where: Conditions) -> int:
        client = self._require()
        flt = _filter(where)
        found = (await client.count(self._collection, count_filter=flt, exact=True)).count
        if found:
            await client.delete(self._collection, qm.FilterSelector(filter=flt), wait=True)
        return found

    async def _set_payload(self, memory_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self._require().set_payload(self._collection, values, [str(memory_id)], wait=True)

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
        requests = [_nearest(dense, DENSE, scope, weights.dense_candidates)]
        if terms:
            requests.append(_nearest(_sparse(terms), KEYWORDS, scope, weights.keyword_candidates))
        if weights.pinned_limit:
            requests.append(
                _nearest(dense, DENSE, replace(scope, pinned=True), weights.pinned_limit)
            )
        results = await self._require().query_batch_points(self._collection, requests)
        hits = [
            [Hit(p.score, from_payload(p.id, p.payload or {})) for p in r.points] for r in results
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
            where = Conditions(ids=dense_ids)
            requests.append(_nearest(query.vector.tolist(), DENSE, where, len(dense_ids), False))
        if keyword_ids:
            where = Conditions(ids=keyword_ids)
            requests.append(_nearest(_sparse(terms), KEYWORDS, where, len(keyword_ids), False))
        results = await self._require().query_batch_points(self._collection, requests)
        scores = [{as_uuid(p.id): p.score for p in r.points} for r in results]
        cosine = scores.pop(0) if dense_ids else {}
        bm25 = scores.pop(0) if keyword_ids else {}
        return cosine, bm25

    async def list_memories(
        self, where: MemoryFilter, *, limit: int = 50, cursor: str | None = None
    ) -> MemoryPage:
        """Memories matching ``where``, newest first, ``limit`` per page."""
        after = Cursor.decode(cursor) if cursor else None
        response = await self._require().query_points(
            self._collection,
            query=qm.OrderByQuery(
                order_by=qm.OrderBy(key="created_at", direction=qm.Direction.DESC)
            ),
            query_filter=_filter(listing_conditions(where, after)),
            limit=limit + 1,
            with_payload=True,
        )
        rows = [from_payload(p.id, p.payload or {}) for p in response.points]
        return make_page(rows, limit, after)

    async def get(
        self, memory_id: uuid.UUID, *, persona_id: str | None = None, user_id: str | None = None
    ) -> MemoryRecord | None:
        """The memory with this id, or ``None`` if absent or outside the given scope."""
        found = await self._require().retrieve(
            self._collection, [str(memory_id)], with_payload=True
        )
        if not found or found[0].payload is None:
            return None
        record = from_payload(found[0].id, found[0].payload)
        if persona_id is not None and record.persona_id != persona_id:
            return None
        if user_id is not None and record.user_id != user_id:
            return None
        return record

    async def count(self, persona_id: str, user_id: str | None = None) -> int:
        where = Conditions(persona_id=persona_id, user_id=user_id)
        result = await self._require().count(
            self._collection, count_filter=_filter(where), exact=True
        )
        return result.count


def _point(record: MemoryRecord, dense: list[float]) -> qm.PointStruct:
    vectors: dict[str, Any] = {DENSE: dense}
    terms = document_terms(record.keyword_document)
    if terms:
        vectors[KEYWORDS] = _sparse(terms)
    return qm.PointStruct(id=str(record.id), vector=vectors, payload=to_payload(record))


def _sparse(terms: SparseTerms) -> qm.SparseVector:
    return qm.SparseVector(indices=list(terms.indices), values=list(terms.values))


def _nearest(
    vector: list[float] | qm.SparseVector,
    using: str,
    where: Conditions,
    limit: int,
    with_payload: bool = True,
) -> qm.QueryRequest:
    return qm.QueryRequest(
        query=vector, using=using, filter=_filter(where), limit=limit, with_payload=with_payload
    )


def _filter(where: Conditions) -> qm.Filter:
    must: list[Any] = [
        qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
        for key, value in where.equals()
    ]
    if where.kinds is not None:
        must.append(
            qm.FieldCondition(
                key="kind", match=qm.MatchAny(any=[str(kind) for kind in sorted(where.kinds)])
            )
        )
    if where.since is not None or where.until is not None:
        span = qm.DatetimeRange(gte=where.since, lte=where.until)
        must.append(qm.FieldCondition(key="created_at", range=span))
    if where.ids is not None:
        must.append(qm.HasIdCondition(has_id=[str(i) for i in sorted(where.ids)]))
    must_not: list[Any] = []
    if where.exclude_ids:
        must_not.append(qm.HasIdCondition(has_id=[str(i) for i in sorted(where.exclude_ids)]))
    if where.exclude_acts:
        must_not.append(
            qm.FieldCondition(key="act", match=qm.MatchAny(any=list(where.exclude_acts)))
        )
    if must_not:
        return qm.Filter(must=must, must_not=must_not)
    return qm.Filter(must=must)
