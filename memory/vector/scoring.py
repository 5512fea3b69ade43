"""Retrieval ranking: meaning and keywords fused by their spread, plus who is named.

For the candidates of one search (the nearest by meaning and the best by keywords,
each completed with the other channel's exact score)::

    total = w_rel * z(cosine) + w_kw * z(bm25) + w_spk * speaker
          + w_rec * recency + w_imp * importance

- ``z(x)`` is the candidate's standard score within this search's candidates:
  ``(x - mean) / std``. Cosines of a small embedding model crowd into a narrow band and
  BM25 scores have no fixed scale; standardising each per query makes one point of
  either worth the same, where an absolute blend let whichever channel happened to have
  the wider range decide (the blend this replaced lost to plain BM25 on LoCoMo);
- ``speaker`` is 1 for a memory spoken by the one participant the query names ("what
  did Caroline research?"), else 0;
- ``recency`` (``0.5 ** (age / half_life)``) and ``importance`` (the stored 0..1 rating)
  are tie-breakers with small weights: a question about the past must be answered by
  what matches it, not by what was said last or rated highly.

plus what the memory is (:meth:`_Context.standing`): a current fact is lifted, a
persona's reply and a session summary lowered; a user's question, a corrected reply and a superseded statement
rank after every other candidate (:func:`set_aside`). Lines without an ``act`` (imports)
are ranked by the formula alone.

A memory's total depends on the other candidates of its search (that is what makes the
fusion scale-free); both backends fetch the same candidates, so they rank alike. The
vector stores only fetch candidates; the ranking is done here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from memory.errors import InvalidMemory
from memory.types import MemoryRecord, ScoreBreakdown, ScoredMemory
from memory.vector.keywords import STOPWORDS


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """Weights of the retrieval score and how many candidates each channel fetches."""

    relevance: float = 1.0
    keyword: float = 1.0
    speaker: float = 0.5
    recency: float = 0.1
    importance: float = 0.1
    half_life_hours: float = 72.0
    dense_candidates: int = 100
    keyword_candidates: int = 100
    pinned_limit: int = 5
    """Pinned memories always come back: those outside the best ``k`` are appended
    until the result holds this many pinned ones."""
    fact: float = 2.0
    """Added to a current ``fact`` memory: what is known about the user comes first."""
    reply: float = 4.0
    """Taken from a persona's reply stored by a turn (``act`` ``reply`` or ``answer``)
    and from a session summary (kind ``summary``): what the persona said, and what a
    summary retells, rank below what the user said and the facts. (A user's question, a
    reply the user corrected and a statement whose facts were superseded rank after every other
    candidate: :func:`set_aside`.)"""

    def __post_init__(self) -> None:
        for name in (
            "relevance",
            "keyword",
            "speaker",
            "recency",
            "importance",
            "fact",
            "reply",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise InvalidMemory(f"weight {name}", f"{value!r} must be a finite number >= 0")
        if not (math.isfinite(self.half_life_hours) and self.half_life_hours > 0.0):
            raise InvalidMemory("half_life_hours", "must be > 0")
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


@dataclass(frozen=True, slots=True)
class _Spread:
    mean: float
    std: float

    @classmethod
    def of(cls, values: Sequence[float]) -> _Spread:
        if not values:
            return cls(0.0, 0.0)
        mean = math.fsum(values) / len(values)
        var = math.fsum((v - mean) ** 2 for v in values) / len(values)
        return cls(mean, math.sqrt(var))

    def z(self, value: float) -> float:
        # all alike (or one candidate): the channel says nothing about order
        return (value - self.mean) / self.std if self.std > 1e-9 else 0.0


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def named_speaker(query: str, speakers: Iterable[str]) -> str | None:
    """The one speaker whose name (first name or full) the query mentions, else None.

    "What did Caroline research?" names Caroline; a query naming two speakers, or
    none, names nobody (its answer may come from either). A first name that is also a
    function word ("Will") counts only when capitalised in the query."""
    normal = unicodedata.normalize("NFKC", query)
    written = set(_WORD.findall(normal))
    words = {w.casefold() for w in written}
    if not words:
        return None

    def names(speaker: str) -> bool:
        parts = _WORD.findall(unicodedata.normalize("NFKC", speaker))
        if not parts:
            return False
        folded = [p.casefold() for p in parts]
        if len(parts) > 1 and all(p in words for p in folded):
            return True
        first = folded[0]
        return first in words and (first not in STOPWORDS or parts[0] in written)

    named = {speaker for speaker in set(speakers) if names(speaker)}
    return named.pop() if len(named) == 1 else None


def rank(
    candidates: Iterable[Candidate],
    weights: ScoringWeights,
    *,
    k: int,
    now: datetime,
    query: str = "",
) -> list[ScoredMemory]:
    """The best ``k`` candidates, plus pinned ones outside them (up to ``pinned_limit``),
    best first. Ties (to 1e-6, so float32 and float64 stores agree) go to the newer,
    then to the smaller id."""
    pool = list(candidates)
    # the spread is taken over the evidence: questions, replies and what is set aside
    # (often near-copies of the query) would stretch it and reweigh the channels
    evidence = [c for c in pool if not _not_evidence(c.record)] or pool
    ctx = _Context(
        weights,
        now,
        _Spread.of([max(c.cosine, 0.0) for c in evidence]),
        _Spread.of([max(c.bm25, 0.0) for c in evidence]),
        named_speaker(query, (c.record.speaker_name for c in pool)) if query else None,
    )
    ordered = sorted(((ctx.total(c), c) for c in pool), key=_order)
    chosen = ordered[:k]
    pinned_in = sum(1 for _, c in chosen if c.record.pinned)
    for extra in ordered[k:]:
        if pinned_in >= weights.pinned_limit:
            break
        if extra[1].record.pinned:
            chosen.append(extra)
            pinned_in += 1
    # only the chosen get a breakdown
    return [ScoredMemory(c.record, ctx.breakdown(total, c)) for total, c in chosen]


@dataclass(frozen=True, slots=True)
class _Context:
    """What one search's scores are relative to."""

    weights: ScoringWeights
    now: datetime
    dense: _Spread
    keyword: _Spread
    speaker: str | None

    def parts(self, c: Candidate) -> tuple[float, float, float, float]:
        """The candidate's standardised relevance and keyword scores, whether the query
        names its speaker, and its recency."""
        record = c.record
        return (
            self.dense.z(max(c.cosine, 0.0)),
            self.keyword.z(max(c.bm25, 0.0)),
            1.0 if self.speaker is not None and record.speaker_name == self.speaker else 0.0,
            recency(record.created_at, self.now, self.weights.half_life_hours),
        )

    def total(self, c: Candidate) -> float:
        w = self.weights
        relevance_z, keyword_z, named, fresh = self.parts(c)
        return (
            w.relevance * relevance_z
            + w.keyword * keyword_z
            + w.speaker * named
            + w.recency * fresh
            + w.importance * c.record.importance
            + self.standing(c)
        )

    def standing(self, c: Candidate) -> float:
        """What the memory is: a fact is lifted, a persona's reply and a session
        summary lowered. Lines without an ``act`` (imports) are neither."""
        record, w = c.record, self.weights
        if record.kind == "fact":
            return w.fact
        if record.kind == "summary":
            return -w.reply
        if record.metadata and record.metadata.get("act") in _REPLIES:
            return -w.reply
        return 0.0

    def breakdown(self, total: float, c: Candidate) -> ScoreBreakdown:
        relevance_z, keyword_z, named, fresh = self.parts(c)
        return ScoreBreakdown(
            total=total,
            relevance=min(max(c.cosine, 0.0), 1.0),
            keyword=max(c.bm25, 0.0),
            recency=fresh,
            importance=c.record.importance,
            pinned=c.record.pinned,
            relevance_z=relevance_z,
            keyword_z=keyword_z,
            speaker=named,
        )


_REPLIES = ("reply", "answer")
"""A persona's lines stored by a turn (an ``answer`` replies to a question)."""


def set_aside(record: MemoryRecord) -> bool:
    """Memories that are not evidence of what is true, ranked after all others: a user's
    question (it asks, it tells nothing; searches leave out those stored with their act
    in the payload), a reply the user corrected, and a statement whose facts a later one
    superseded."""
    meta = record.metadata
    if not meta:
        return False
    return bool(meta.get("act") == "question" or meta.get("contradicted") or meta.get("superseded"))


def _not_evidence(record: MemoryRecord) -> bool:
    """Left out of the spread: what is set aside, the persona's replies and session
    summaries (a summary retells the statements, which would count twice)."""
    return (
        set_aside(record)
        or record.kind == "summary"
        or bool(record.metadata and record.metadata.get("act") in _REPLIES)
    )


def _order(scored: tuple[float, Candidate]) -> tuple[bool, float, float, int]:
    total, c = scored
    # a UUID's integer orders as its (fixed-width, lower-case hex) text does
    return (
        set_aside(c.record),
        -round(total, 6),
        -c.record.created_at.timestamp(),
        c.record.id.int,
    )
