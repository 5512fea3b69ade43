"""Bounded evolution of opted-in traits toward observed behaviour, and manual edits.

Evolution is deliberately slow: a trait moves at most ``rate`` per call, only after
``min_observations`` turns, and never when it is locked or not opted in (``evolves``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from agents.traits.drift import observed_groups, trait_noun
from agents.traits.prototypes import canonical
from agents.traits.types import ObservedProfile, TraitChange
from personas.types import Trait

MIN_GAP = 0.01
# Smaller moves are not worth a write (and can vanish in float rounding).
MIN_STEP = 1e-4
Action = Literal["set", "increase", "decrease"]


def _clamp01(x: float) -> float:
    return max(0.0, min(x, 1.0))


def evolve(
    traits: Sequence[Trait],
    profile: ObservedProfile,
    *,
    rate: float = 0.05,
    min_observations: int = 5,
) -> list[TraitChange]:
    """The changes to apply to ``traits`` after the latest profile update.

    Only traits with ``evolves=True`` and ``locked=False`` move, toward the observed mean
    of their canonical group, by ``min(|gap|, rate * confidence)``: never more than
    ``rate`` per call, and more slowly on weaker evidence (an OCEAN proxy at confidence
    0.3 moves at 30 % of the rate). No change below ``min_observations`` or when the gap
    is under 0.01. The caller persists the changes and may record ``reason`` in the
    persona's version history."""
    if not (0.0 <= rate <= 1.0) or math.isnan(rate):
        raise ValueError(f"evolution rate {rate} must be in 0..1")
    groups = observed_groups(profile)
    changes: list[TraitChange] = []
    for trait in traits:
        if trait.locked or not trait.evolves:
            continue
        stat = groups.get(canonical(trait.name))
        if stat is None or stat.count < min_observations:
            continue
        gap = stat.mean - trait.value
        if abs(gap) < MIN_GAP:
            continue
        step = min(abs(gap), rate * stat.confidence)
        new = _clamp01(trait.value + math.copysign(step, gap))
        if abs(new - trait.value) < MIN_STEP:
            continue
        direction = "higher" if gap > 0 else "lower"
        reason = (
            f"observed {trait_noun(trait.name)} {direction} than configured: "
            f"mean {stat.mean:.2f} over {stat.count} replies (configured {trait.value:.2f})"
        )
        changes.append(TraitChange(trait.name, trait.value, new, reason))
    return changes


def manual_adjust(value: float, action: Action, intensity: float) -> float:
    """A trait value after a user's edit: ``set`` to ``intensity``, or ``increase`` /
    ``decrease`` by it; clamped to 0..1. Same rule as a settings patch."""
    if math.isnan(value) or math.isnan(intensity):
        raise ValueError("trait value and intensity must be numbers")
    if action == "set":
        return _clamp01(intensity)
    if action == "increase":
        return _clamp01(value + intensity)
    if action == "decrease":
        return _clamp01(value - intensity)
    raise ValueError(f"unknown trait action '{action}'; use set, increase or decrease")


# feedback reason -> (trait it moves, direction, style field moved when the persona lacks
# the trait, and that field's step)
FEEDBACK_REASONS: dict[str, tuple[str, int, str | None, float]] = {
    "too_long": ("verbosity", -1, "max_tokens", 0.15),
    "too_short": ("verbosity", +1, "max_tokens", 0.15),
    "too_formal": ("formality", -1, None, 0.0),
    "too_casual": ("formality", +1, None, 0.0),
    "too_many_questions": ("inquisitiveness", -1, None, 0.0),
    "too_uncertain": ("confidence", +1, None, 0.0),
    "too_harsh": ("agreeableness", +1, None, 0.0),
    "not_funny": ("humour", -1, "humour_usage", 0.05),
    "too_dry": ("humour", +1, "humour_usage", 0.05),
}
"""Reasons that move a setting. Others (``off_character``, ``wrong_facts``, ...) are
recorded and counted in quality, but move nothing."""


def feedback_change(
    traits: Sequence[Trait], reason: str, count: int, *, rate: float = 0.05
) -> TraitChange | None:
    """The bounded move ``count`` negative ratings tagged ``reason`` ask of the persona's
    matching trait: ``rate`` in the reason's direction, the same bound as evolution.
    None when the reason moves no trait, the persona lacks it, or the trait is locked
    or not opted in to evolution (``evolves``)."""
    entry = FEEDBACK_REASONS.get(reason)
    if entry is None:
        return None
    name, direction, _, _ = entry
    trait = next((t for t in traits if canonical(t.name) == canonical(name)), None)
    if trait is None or trait.locked or not trait.evolves:
        return None
    new = round(_clamp01(trait.value + direction * rate), 4)
    if abs(new - trait.value) < MIN_STEP:
        return None
    why = (
        f"feedback: {count} negative ratings '{reason.replace('_', ' ')}' -> "
        f"{trait_noun(trait.name)} {'up' if direction > 0 else 'down'}"
    )
    return TraitChange(trait.name, trait.value, new, why)
