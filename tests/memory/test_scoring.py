"""Retrieval scoring: recency decay, scale-free fusion of meaning and keywords, the named
speaker, ranking with pinned memories."""

from __future__ import annotations

from datetime import timedelta
from statistics import mean, pstdev

import pytest

from memory import Candidate, InvalidMemory, ScoringWeights, named_speaker, rank, recency
from tests.memory.helpers import NOW, record


def test_recency_halves_every_half_life() -> None:
    assert recency(NOW, NOW, 72) == 1.0
    assert recency(NOW - timedelta(hours=72), NOW, 72) == pytest.approx(0.5)
    assert recency(NOW - timedelta(hours=144), NOW, 72) == pytest.approx(0.25)
    assert recency(NOW + timedelta(hours=5), NOW, 72) == 1.0


def test_rank_standardises_each_channel_and_appends_pinned() -> None:
    close = Candidate(record("close"), cosine=0.9, bm25=0.0)
    keyword = Candidate(record("keyword"), cosine=0.2, bm25=12.0)
    far = Candidate(record("far"), cosine=0.1, bm25=0.0)
    pinned = Candidate(record("pinned", pinned=True), cosine=-0.3, bm25=0.0)
    weights = ScoringWeights(recency=0.0, importance=0.0)

    ranked = rank([far, pinned, keyword, close], weights, k=2, now=NOW)

    assert [r.record.text for r in ranked] == ["keyword", "close", "pinned"]
    cosines, bm25s = [0.1, 0.0, 0.2, 0.9], [0.0, 0.0, 12.0, 0.0]
    best = ranked[0].score
    assert best.relevance_z == pytest.approx((0.2 - mean(cosines)) / pstdev(cosines))
    assert best.keyword_z == pytest.approx((12.0 - mean(bm25s)) / pstdev(bm25s))
    assert best.total == pytest.approx(best.relevance_z + best.keyword_z)
    assert best.keyword == 12.0 and best.relevance == pytest.approx(0.2)
    assert ranked[2].score.relevance == 0.0 and ranked[2].score.pinned


def test_a_channels_scale_does_not_decide() -> None:
    """Multiplying every BM25 score by 100 changes nothing: what counts is how far a
    candidate stands out in each channel, not which channel has the bigger numbers."""
    pool = [
        ("meaning", 0.80, 1.0),
        ("words", 0.40, 6.0),
        ("both", 0.60, 4.0),
        ("neither", 0.30, 0.5),
    ]

    def order(scale: float) -> list[str]:
        candidates = [Candidate(record(t), cosine=c, bm25=b * scale) for t, c, b in pool]
        ranked = rank(candidates, ScoringWeights(recency=0.0, importance=0.0), k=4, now=NOW)
        return [r.record.text for r in ranked]

    assert order(1.0) == order(100.0) == order(0.01)
    assert order(1.0)[0] == "both"


def test_named_speaker_is_the_one_participant_the_query_names() -> None:
    speakers = ["Caroline", "Melanie", "Albert Einstein"]
    assert named_speaker("What did Caroline research?", speakers) == "Caroline"
    assert named_speaker("when did albert move to Bern", speakers) == "Albert Einstein"
    assert named_speaker("Did Caroline and Melanie meet?", speakers) is None
    assert named_speaker("what is my cat called", speakers) is None
    assert named_speaker("will it rain?", ["Will", "Ann"]) is None
    assert named_speaker("What did Will say?", ["Will", "Ann"]) == "Will"


def test_the_named_speakers_line_wins_between_equals() -> None:
    hers = Candidate(record("I researched adoption agencies", speaker_name="Caroline"), 0.5, 2.0)
    his = Candidate(record("I researched adoption agencies", speaker_name="Melanie"), 0.5, 2.0)
    other = Candidate(record("the weather was nice", speaker_name="Melanie"), 0.1, 0.0)
    ranked = rank(
        [his, hers, other], ScoringWeights(), k=3, now=NOW, query="What did Caroline research?"
    )
    assert [r.record.speaker_name for r in ranked][:1] == ["Caroline"]
    assert ranked[0].score.speaker == 1.0 and ranked[1].score.speaker == 0.0


def test_recency_and_importance_never_outrank_what_matches() -> None:
    """A question about the past is answered by the old line that matches it, not by the
    newest or most important one."""
    old = Candidate(
        record("my sister lives in Porto", hours_ago=24 * 400, importance=0.1), 0.7, 5.0
    )
    chatter = [
        Candidate(record(f"nice weather today {i}", importance=1.0), 0.3 + i / 100, 0.0)
        for i in range(8)
    ]
    ranked = rank(
        [*chatter, old], ScoringWeights(), k=3, now=NOW, query="where does my sister live?"
    )
    assert ranked[0].record.text == "my sister lives in Porto"


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
