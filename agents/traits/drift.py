"""How far observed behaviour has moved from a persona's configured traits, and prompt
lines that pull it back.

Persona trait names and extractor names meet through
:func:`agents.traits.prototypes.canonical`: ``humour`` (configured) is compared with
``humorous`` (embeddings); ``formality`` with both ``formality`` (stylometry) and
``formal`` (embeddings), combined by confidence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from agents.traits.prototypes import canonical
from agents.traits.types import DriftReport, ObservedProfile, TraitGap, TraitStat
from personas.types import Trait

PersonaTraits = Sequence[Trait] | Mapping[str, float]


def configured_values(persona_traits: PersonaTraits) -> dict[str, float]:
    if isinstance(persona_traits, Mapping):
        return {name: float(v) for name, v in persona_traits.items()}
    return {t.name: t.value for t in persona_traits}


def observed_groups(profile: ObservedProfile) -> dict[str, TraitStat]:
    """The profile regrouped by canonical trait: a confidence-weighted mean and last
    value, the highest count and the highest confidence of the stats in each group."""
    groups: dict[str, list[TraitStat]] = {}
    for name, stat in profile.stats.items():
        groups.setdefault(canonical(name), []).append(stat)
    out: dict[str, TraitStat] = {}
    for group, stats in groups.items():
        if len(stats) == 1:
            out[group] = stats[0]
            continue
        weight = sum(s.confidence for s in stats)
        out[group] = TraitStat(
            mean=sum(s.mean * s.confidence for s in stats) / weight,
            count=max(s.count for s in stats),
            last=sum(s.last * s.confidence for s in stats) / weight,
            confidence=max(s.confidence for s in stats),
        )
    return out


def observed(profile: ObservedProfile, trait_name: str) -> TraitStat | None:
    """What the profile says about one persona trait, by canonical name, if anything."""
    return observed_groups(profile).get(canonical(trait_name))


def drift(
    persona_traits: PersonaTraits,
    profile: ObservedProfile,
    *,
    threshold: float = 0.25,
    min_observations: int = 3,
) -> DriftReport:
    """Compare configured trait values with the observed profile.

    Only traits observed at least ``min_observations`` times count. ``score`` is
    ``1 - sum(c * |gap|) / sum(c)`` with ``c`` the trait's observation confidence, so a
    well-measured trait (stylometry) weighs more than a rough proxy (OCEAN). Call after
    each profile update; feed ``drifting`` to :func:`reinforcement_lines`."""
    groups = observed_groups(profile)
    per_trait: dict[str, TraitGap] = {}
    for name, value in configured_values(persona_traits).items():
        stat = groups.get(canonical(name))
        if stat is None or stat.count < min_observations:
            continue
        per_trait[name] = TraitGap(value, stat.mean, stat.mean - value, stat.count, stat.confidence)
    weight = sum(g.confidence for g in per_trait.values())
    score = (
        1.0 - sum(g.confidence * abs(g.gap) for g in per_trait.values()) / weight if weight else 1.0
    )
    drifting = sorted(
        (name for name, g in per_trait.items() if abs(g.gap) > threshold),
        key=lambda name: -abs(per_trait[name].gap),
    )
    return DriftReport(
        score=min(1.0, max(0.0, score)),
        per_trait=MappingProxyType(per_trait),
        drifting=tuple(drifting),
    )


# canonical trait -> (noun, line when observed too low, line when observed too high)
_LINES: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "humorous": (
            "humour",
            "Let your humour show more: a light joke or playful aside fits you.",
            "Tone down the humour: keep jokes for moments that clearly invite them.",
        ),
        "warm": (
            "warmth",
            "Let more warmth through: greet the person kindly and show you care.",
            "Keep your warmth measured: friendly, but more reserved.",
        ),
        "formal": (
            "formality",
            "Speak with more formality: full sentences, precise words, no slang.",
            "Relax your formality: speak plainly and conversationally.",
        ),
        "curious": (
            "curiosity",
            "Show your curiosity: ask a genuine follow-up question.",
            "Rein in your curiosity: answer first and ask fewer questions.",
        ),
        "assertive": (
            "assertiveness",
            "Be more assertive: state your view plainly and stand by it.",
            "Soften your assertiveness: offer your view without pressing it.",
        ),
        "empathetic": (
            "empathy",
            "Show more empathy: acknowledge how the person feels first.",
            "Keep empathy brief: acknowledge feelings in a sentence, then help.",
        ),
        "playful": (
            "playfulness",
            "Let your playfulness out: a little fun suits you.",
            "Tone down the playfulness: stay focused and composed.",
        ),
        "sceptical": (
            "scepticism",
            "Bring more scepticism: question claims and ask for evidence.",
            "Ease your scepticism: give ideas a fair hearing before doubting them.",
        ),
        "patient": (
            "patience",
            "Show more patience: slow down and explain again without hurry.",
            "You can be brisker: less repetition, get to the point sooner.",
        ),
        "enthusiastic": (
            "enthusiasm",
            "Let your enthusiasm show: sound glad and energised.",
            "Tone down the enthusiasm: a calmer, steadier voice suits you.",
        ),
        "analytical": (
            "analytical rigour",
            "Be more analytical: break problems into parts, reason step by step.",
            "Be less analytical: favour intuition and plain summaries.",
        ),
        "encouraging": (
            "encouragement",
            "Offer more encouragement: note progress and cheer them on.",
            "Ease off the encouragement: praise only what is earned.",
        ),
        "blunt": (
            "directness",
            "Be more direct: say plainly what you think, without cushioning.",
            "Soften your directness: be tactful and cushion criticism.",
        ),
        "humble": (
            "humility",
            "Show more humility: admit limits and credit others' knowledge.",
            "Show less self-doubt: you may speak with authority.",
        ),
        "poetic": (
            "poetic language",
            "Let your language be more poetic: images and rhythm suit you.",
            "Use less poetic language: say things plainly.",
        ),
        "didactic": (
            "teaching",
            "Teach more: explain the idea, give an example, check understanding.",
            "Lecture less: answer what was asked without a lesson.",
        ),
        "verbosity": (
            "length",
            "Give fuller answers: a little more detail and explanation.",
            "Be more concise: shorter replies suit you.",
        ),
        "hedging": (
            "hedging",
            "Voice real uncertainty: qualify claims you are unsure of.",
            "Hedge less: state what you know plainly.",
        ),
        "confidence": (
            "confidence",
            "Speak with more confidence: fewer qualifiers, clear claims.",
            "Speak with less certainty: acknowledge what you might have wrong.",
        ),
        "lexical_richness": (
            "vocabulary",
            "Use a richer, more varied vocabulary.",
            "Use simpler, plainer words.",
        ),
        "agreeableness": (
            "agreeableness",
            "Be more agreeable: kind, cooperative and generous.",
            "Be less accommodating: hold your own view when you disagree.",
        ),
        "extraversion": (
            "extraversion",
            "Be more outgoing and energetic in how you speak.",
            "Be quieter and more reserved in how you speak.",
        ),
        "openness": (
            "openness",
            "Show more openness: welcome new ideas and explore them.",
            "Stay grounded: favour the concrete over speculation.",
        ),
    }
)


def reinforcement_lines(report: DriftReport, persona_traits: PersonaTraits) -> list[str]:
    """Prompt instructions, one per drifting trait (largest gap first), that steer the
    persona back toward its configured traits. Plain words, no numbers."""
    configured = configured_values(persona_traits)
    lines: list[str] = []
    seen: set[str] = set()
    for name in report.drifting:
        gap = report.per_trait.get(name)
        if gap is None or name not in configured:
            continue
        group = canonical(name)
        if group in seen:
            continue
        seen.add(group)
        default = group.replace("_", " ")
        _, more, less = _LINES.get(
            group, (default, f"Let your {default} show more.", f"Tone down your {default}.")
        )
        lines.append(more if gap.gap < 0 else less)
    return lines


def trait_noun(name: str) -> str:
    """A readable noun for a trait name: ``humorous`` and ``wit`` -> ``humour``."""
    group = canonical(name)
    entry = _LINES.get(group)
    return entry[0] if entry else group.replace("_", " ")
