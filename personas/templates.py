"""Templates: named partial definitions ("Debate Ready", "Gentle Tutor"...) applied to a
persona as a new version. A template sets the traits it names (others stay), enables
its modes (adding them if missing) and changes the style fields it gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from personas.definitions import ModeDef, PersonaDef, PersonaPatch, StylePatch, TraitDef


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    title: str
    description: str
    traits: tuple[dict[str, Any], ...] = ()
    modes: tuple[str, ...] = ()
    style: Mapping[str, Any] = field(default_factory=dict)


TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {
        t.name: t
        for t in (
            Template(
                "debate-ready",
                "Debate Ready",
                "Takes a clear position, argues it and answers objections.",
                traits=(
                    {"name": "assertiveness", "type": "behaviour", "value": 0.8},
                    {"name": "scepticism", "type": "behaviour", "value": 0.7},
                    {"name": "agreeableness", "type": "ocean", "value": 0.45},
                ),
                modes=("debater", "critic"),
                style={"default_mode": "debater", "temperature": 0.75},
            ),
            Template(
                "gentle-tutor",
                "Gentle Tutor",
                "Patient and encouraging; teaches step by step and checks understanding.",
                traits=(
                    {"name": "patience", "type": "behaviour", "value": 0.9},
                    {"name": "encouragement", "type": "behaviour", "value": 0.8},
                    {"name": "agreeableness", "type": "ocean", "value": 0.85},
                ),
                modes=("educator",),
                style={"default_mode": "educator", "emotional_style": "warm", "temperature": 0.6},
            ),
            Template(
                "concise-expert",
                "Concise Expert",
                "Short, precise answers with no filler.",
                traits=(
                    {"name": "verbosity", "type": "style", "value": 0.25},
                    {"name": "confidence", "type": "style", "value": 0.8},
                ),
                modes=("analyst",),
                style={"max_tokens": 256, "temperature": 0.5},
            ),
            Template(
                "warm-companion",
                "Warm Companion",
                "Listens, remembers what matters and answers with warmth.",
                traits=(
                    {"name": "warmth", "type": "behaviour", "value": 0.9},
                    {"name": "empathy", "type": "behaviour", "value": 0.85},
                ),
                modes=("companion",),
                style={"default_mode": "companion", "emotional_style": "warm", "humour_usage": 0.4},
            ),
        )
    }
)


def template_patch(current: PersonaDef, template: Template) -> PersonaPatch:
    """The patch that applies ``template`` to ``current``. A locked trait of the same
    name keeps its value."""
    traits = {t.name: t for t in current.traits}
    for raw in template.traits:
        old = traits.get(raw["name"])
        if old is not None and old.locked:
            continue
        keep = old.model_dump() if old is not None else {}
        traits[raw["name"]] = TraitDef.model_validate({**keep, **raw})
    modes = {m.mode: m for m in current.modes}
    for mode in template.modes:
        modes[mode] = ModeDef(mode=mode, enabled=True)
    return PersonaPatch(
        traits=tuple(traits.values()),
        modes=tuple(modes.values()),
        style=StylePatch.model_validate(dict(template.style)),
    )


def template_view(t: Template) -> dict[str, Any]:
    return {
        "name": t.name,
        "title": t.title,
        "description": t.description,
        "traits": [dict(x) for x in t.traits],
        "modes": list(t.modes),
        "style": dict(t.style),
    }
