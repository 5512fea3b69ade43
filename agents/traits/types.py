"""Values of trait extraction, observed profiles, drift and evolution.

Everything here is immutable: a profile update returns a new profile, so callers can cache,
compare and persist profiles without defensive copies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

Method = Literal["stylometry", "embedding", "llm_judge"]
Vector = npt.NDArray[np.float32]


class Embed(Protocol):
    """Embeds texts as L2-normalised float32 rows, one per text (``len(texts) x dim``)."""

    async def __call__(self, texts: list[str], /) -> Vector: ...


@dataclass(frozen=True, slots=True)
class TraitObservation:
    """One trait value seen in one reply.

    ``trait`` is the extractor's own name (``formality`` from stylometry, ``formal`` from
    embeddings); :func:`agents.traits.prototypes.canonical` maps both to one group."""

    trait: str
    value: float
    method: Method
    confidence: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 1.0:  # also rejects NaN
            raise ValueError(f"observation of '{self.trait}' has value {self.value} outside 0..1")
        if not 0.0 < self.confidence <= 1.0:
            raise ValueError(
                f"observation of '{self.trait}' has confidence {self.confidence} outside (0, 1]"
            )


@dataclass(frozen=True, slots=True)
class TraitStat:
    """The running state of one observed trait.

    ``mean`` is a bias-corrected exponential moving average; ``confidence`` is the same
    average over the observations' confidences; ``count`` counts updates (turns)."""

    mean: float
    count: int
    last: float
    confidence: float


def _ema(old: float, new: float, weight: float) -> float:
    return old + weight * (new - old)


def _combine(observations: Iterable[TraitObservation]) -> dict[str, tuple[float, float]]:
    """Per trait name: (confidence-weighted value, highest confidence) within one batch."""
    sums: dict[str, list[float]] = {}
    for o in observations:
        acc = sums.setdefault(o.trait, [0.0, 0.0, 0.0])
        acc[0] += o.value * o.confidence
        acc[1] += o.confidence
        acc[2] = max(acc[2], o.confidence)
    return {name: (s / w, c) for name, (s, w, c) in sums.items()}


@dataclass(frozen=True, slots=True)
class ObservedProfile:
    """What a persona has been seen to do, per observed trait name.

    ``update`` is an exponential moving average with ``alpha``, bias-corrected for the
    first turns: the weight of a new value is ``max(alpha, 1 / count)``, so the first
    ``1 / alpha`` observations form a plain running mean (no pull toward a 0 prior) and
    later ones decay geometrically. Use one profile per persona; persist ``stats``."""

    stats: Mapping[str, TraitStat] = field(default_factory=lambda: MappingProxyType({}))
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha <= 1.0):
            raise ValueError(f"profile alpha {self.alpha} must be in (0, 1]")
        if not isinstance(self.stats, MappingProxyType):
            object.__setattr__(self, "stats", MappingProxyType(dict(self.stats)))

    def update(self, observations: Iterable[TraitObservation]) -> ObservedProfile:
        """A new profile with one turn's observations folded in (several observations of
        the same name in one batch count as one turn, averaged by confidence)."""
        stats = dict(self.stats)
        for name, (value, confidence) in _combine(observations).items():
            old = stats.get(name)
            if old is None:
                stats[name] = TraitStat(value, 1, value, confidence)
                continue
            count = old.count + 1
            weight = max(self.alpha, 1.0 / count)
            stats[name] = TraitStat(
                mean=_ema(old.mean, value, weight),
                count=count,
                last=value,
                confidence=_ema(old.confidence, confidence, weight),
            )
        return ObservedProfile(MappingProxyType(stats), self.alpha)

    def get(self, name: str) -> TraitStat | None:
        return self.stats.get(name)

    def __len__(self) -> int:
        return len(self.stats)


@dataclass(frozen=True, slots=True)
class TraitGap:
    """Configured versus observed value of one persona trait; ``gap = observed - configured``."""

    configured: float
    observed: float
    gap: float
    count: int
    confidence: float


@dataclass(frozen=True, slots=True)
class DriftReport:
    """How consistent observed behaviour is with configured traits.

    ``score`` is 1 when every compared trait is observed at its configured value and falls
    toward 0 as confidence-weighted gaps grow; ``drifting`` names the persona traits whose
    absolute gap exceeds the threshold, largest gap first. With nothing compared yet the
    score is 1 (no evidence of drift)."""

    score: float
    per_trait: Mapping[str, TraitGap]
    drifting: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TraitChange:
    """One bounded move of an evolving trait toward what was observed."""

    name: str
    old: float
    new: float
    reason: str
