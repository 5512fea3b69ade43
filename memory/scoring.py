"""Retrieval scoring in the spirit of Generative Agents (Park et al., 2023).

``total = w_rel*relevance + w_kw*keyword + w_rec*recency + w_imp*importance`` where

- relevance is the cosine similarity of query and memory, clamped to 0..1;
- keyword is the BM25 score (Qdrant's IDF times our term weights) squashed into 0..1
  by ``raw / (raw + keyword_saturation)``, so one rare name counts, many common words
  do not swamp meaning;
- recency is ``0.5 ** (age / half_life)``;
- importance is the stored 0..1 rating.

Every part is absolute (not min-max scaled over the candidates), so a memory's score
does not depend on which other memories happened to be fetched, and the Edge and server
backends rank the same data the same way. The vector stores only fetch candidates;
the ranking is done here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from memory.errors import InvalidMemory
from memory.types import MemoryRecord, ScoreBreakdown, ScoredMemory


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """Weights of the retrieval score and how many candidates each stage fetches."""

    relevance: float = 1.0
    keyword: float = 0.6
    recency: float = 0.3
    importance: float = 0.3
    half_life_hours: float = 72.0
    keyword_saturation: float = 4.0
    dense_candidates: int = 40
    keyword_candidates: int = 20
    pinned_limit: int = 5
    """Pinned memories always come back: those outside the best ``k`` are appended
    until the result holds this many pinned ones."""

    def __post_init__(self) -> None:
        for name in ("relevance", "keyword", "recency", "importance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise InvalidMemory(f"weight {name}", f"{value!r} must be a finite number >= 0")
        for name in ("half_life_hours", "keyword_saturation"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0.0):
                raise InvalidMemory(name, "must be > 0")
        for name in ("dense_candidates", "keyword_candidates"):
            if getattr(self, name) < 1:
                raise InvalidMemory(name, "must be at least 1")
        if self.pinned_limit < 0:
            raise InvalidMemory("pinned_limit", "must be >= 0")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A fetched memory with its raw similarity scores from the vector store."""

    record: MemoryRecord
    cosine: float
    bm25: float


def recency(created_at: datetime, now: datetime, half_life_hours: float) -> float:
    """1.0 for a memory made now, 0.5 after one half-life; future stamps count as now."""
    age_hours = max((now - created_at).total_seconds(), 0.0) / 3600.0
    return float(0.5 ** (age_hours / half_life_hours))


def keyword_relevance(bm25: float, saturation: float) -> float:
    bm25 = max(bm25, 0.0)
    return bm25 / (bm25 + saturation)


def score(candidate: Candidate, weights: ScoringWeights, now: datetime) -> ScoreBreakdown:
    record = candidate.record
    relevance, keyword, fresh = _parts(candidate, weights, now)
    return ScoreBreakdown(
        total=_weighted(weights, relevance, keyword, fresh, record.importance),
        relevance=relevance,
        keyword=keyword,
        keyword_raw=max(candidate.bm25, 0.0),
        recency=fresh,
        importance=record.importance,
        pinned=record.pinned,
    )


def _parts(
    candidate: Candidate, weights: ScoringWeights, now: datetime
) -> tuple[float, float, float]:
    """Relevance, keyword and recency of a candidate, each 0..1."""
    return (
        min(max(candidate.cosine, 0.0), 1.0),
        keyword_relevance(candidate.bm25, weights.keyword_saturation),
        recency(candidate.record.created_at, now, weights.half_life_hours),
    )


def _weighted(
    weights: ScoringWeights, relevance: float, keyword: float, fresh: float, importance: float
) -> float:
    return (
        weights.relevance * relevance
        + weights.keyword * keyword
        + weights.recency * fresh
        + weights.importance * importance
    )


def rank(
    candidates: Iterable[Candidate], weights: ScoringWeights, *, k: int, now: datetime
) -> list[ScoredMemory]:
    """The best ``k`` candidates, plus pinned ones outside them (up to ``pinned_limit``),
    best first. Ties (to 1e-6, so float32 and float64 stores agree) go to the newer,
    then to the smaller id. Only the chosen get a score breakdown."""
    ordered = sorted(candidates, key=lambda c: _order(c, weights, now))
    chosen = ordered[:k]
    pinned_in = sum(1 for c in chosen if c.record.pinned)
    for extra in ordered[k:]:
        if pinned_in >= weights.pinned_limit:
            break
        if extra.record.pinned:
            chosen.append(extra)
            pinned_in += 1
    return [ScoredMemory(c.record, score(c, weights, now)) for c in chosen]


def _order(c: Candidate, weights: ScoringWeights, now: datetime) -> tuple[float, float, int]:
    record = c.record
    total = _weighted(weights, *_parts(c, weights, now), record.importance)
    # a UUID's integer orders as its (fixed-width, lower-case hex) text does
    return (-round(total, 6), -record.created_at.timestamp(), record.id.int)
