"""Trait extraction, observed profiles, drift and evolution: pure and deterministic.

Per turn: ``extract`` (stylometry + prototype similarity of the reply embedding) ->
``ObservedProfile.update`` -> ``drift`` (+ ``reinforcement_lines`` for the next prompt)
-> ``evolve`` for opted-in traits. Storage is the caller's."""

from __future__ import annotations

from agents.traits.drift import drift, observed, reinforcement_lines, trait_noun
from agents.traits.evolution import evolve, manual_adjust
from agents.traits.extract import extract
from agents.traits.prototypes import PROTOTYPES, PrototypeScorer, canonical, ocean
from agents.traits.stylometry import Stylometry, style_traits, stylometry
from agents.traits.types import (
    DriftReport,
    Embed,
    Method,
    ObservedProfile,
    TraitChange,
    TraitGap,
    TraitObservation,
    TraitStat,
)

__all__ = [
    "PROTOTYPES",
    "DriftReport",
    "Embed",
    "Method",
    "ObservedProfile",
    "PrototypeScorer",
    "Stylometry",
    "TraitChange",
    "TraitGap",
    "TraitObservation",
    "TraitStat",
    "canonical",
    "drift",
    "evolve",
    "extract",
    "manual_adjust",
    "observed",
    "ocean",
    "reinforcement_lines",
    "style_traits",
    "stylometry",
    "trait_noun",
]
