"""Views of how personas behave: drift from their configured traits, the observed
profile, and what a reply's trait extraction changed."""

from __future__ import annotations

from agents.tracker import TraitUpdate
from agents.traits import DriftReport
from runtime.usecases.inspection import TraitsView
from runtime.views.base import View
from runtime.views.personas import PersonaRef, TraitView


class TraitGapView(View):
    configured: float
    observed: float
    gap: float
    count: int


class DriftView(View):
    """How far observed behaviour is from the configured traits (score 1: none)."""

    score: float
    drifting: list[str]
    traits: dict[str, TraitGapView]

    @classmethod
    def of(cls, d: DriftReport) -> DriftView:
        return cls(
            score=round(d.score, 4),
            drifting=list(d.drifting),
            traits={
                name: TraitGapView(
                    configured=round(g.configured, 3),
                    observed=round(g.observed, 3),
                    gap=round(g.gap, 3),
                    count=g.count,
                )
                for name, g in d.per_trait.items()
            },
        )


class ObservedTrait(View):
    mean: float
    count: int
    last: float


class PersonaTraits(View):
    """Configured traits, the observed profile (of a session, or persona-wide for an
    admin) and drift: the ``persona.traits`` ack and ``GET /api/personas/{key}/traits``."""

    persona: PersonaRef
    traits: list[TraitView]
    observed: dict[str, ObservedTrait]
    turns: int
    drift: DriftView

    @classmethod
    def of(cls, view: TraitsView) -> PersonaTraits:
        return cls(
            persona=PersonaRef.of(view.persona),
            traits=[TraitView.of(t) for t in view.persona.traits],
            observed={
                name: ObservedTrait(mean=round(s.mean, 3), count=s.count, last=round(s.last, 3))
                for name, s in view.observed.stats.items()
            },
            turns=view.turns,
            drift=DriftView.of(view.drift),
        )


class TraitMove(View):
    name: str
    old: float
    new: float


class TraitsUpdated(View):
    """The ``persona.traits_updated`` event, sent after a reply's traits are extracted."""

    session_id: str
    persona_id: str
    drift: DriftView
    evolved: list[TraitMove]

    @classmethod
    def of(cls, session_id: str, persona_id: str, update: TraitUpdate) -> TraitsUpdated:
        return cls(
            session_id=session_id,
            persona_id=persona_id,
            drift=DriftView.of(update.session_drift),
            evolved=[TraitMove(name=c.name, old=c.old, new=c.new) for c in update.evolved],
        )
