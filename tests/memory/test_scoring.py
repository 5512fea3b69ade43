"""Retrieval scoring: recency decay, keyword squashing, ranking with pinned memories."""

from __future__ import annotations

from datetime import timedelta

import pytest

from memory import Candidate, InvalidMemory, ScoringWeights, keyword_relevance, rank, recency
from tests.memory.helpers import NOW, record


def test_recency_halves_every_half_life() -> None:
    assert recency(NOW, NOW, 72) == 1.0
    assert recency(NOW - timedelta(hours=72), NOW, 72) == pytest.approx(0.5)
    assert recency(NOW - timedelta(hours=144), NOW, 72) == pytest.approx(0.25)
    assert recency(NOW + timedelta(hours=5), NOW, 72) == 1.0


def test_keyword_relevance_saturates() -> None:
    assert keyword_relevance(0.0, 4.0) == 0.0
    assert keyword_relevance(4.0, 4.0) == 0.5
    assert keyword_relevance(-1.0, 4.0) == 0.0
    assert 0.9 < keyword_relevance(40.0, 4.0) < 1.0


def test_rank_orders_by_weighted_total_and_appends_pinned() -> None:
    close = Candidate(record("close"), cosine=0.9, bm25=0.0)
    keyword = Candidate(record("keyword"), cosine=0.2, bm25=12.0)
    far = Candidate(record("far"), cosine=0.1, bm25=0.0)
    pinned = Candidate(record("pinned", pinned=True), cosine=-0.3, bm25=0.0)
    weights = ScoringWeights(recency=0.0, importance=0.0)

    ranked = rank([far, pinned, keyword, close], weights, k=2, now=NOW)

    assert [r.record.text for r in ranked] == ["close", "keyword", "pinned"]
    assert ranked[0].score.total == pytest.approx(0.9)
    assert ranked[1].score.total == pytest.approx(0.2 + 0.6 * 12 / 16)
    assert ranked[2].score.relevance == 0.0 and ranked[2].score.pinned


def test_rank_caps_pinned_and_breaks_ties_by_newest() -> None:
    pinned = [Candidate(record(f"p{i}", pinned=True, hours_ago=i), 0.0, 0.0) for i in range(4)]
    ranked = rank(pinned, ScoringWeights(pinned_limit=2, recency=0.0), k=1, now=NOW)
    assert [r.record.text for r in ranked] == ["p0", "p1"]


@pytest.mark.parametrize(
    "bad",
    [
        {"relevance": -1.0},
        {"keyword": float("nan")},
        {"half_life_hours": 0.0},
        {"dense_candidates": 0},
        {"pinned_limit": -1},
    ],
)
def test_weights_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(InvalidMemory):
        ScoringWeights(**bad)  # type: ignore[arg-type]
