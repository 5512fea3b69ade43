"""How well a persona holds up: quality (consistency, linguistic match, channel
compliance, user satisfaction, each 0-100 with the numbers behind it) and analytics per
day (turns, users, sessions, feedback, latency percentiles, drift). Both are built from
every user's chats and ratings, so only an editor or an admin may read them (as only an
admin reads a persona's persona-wide trait profile)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from agents.traits.fingerprint import FingerprintError, fingerprint
from personas import Persona
from personas.replies import channel_stats
from runtime.errors import ChatError
from runtime.infra.auth import Principal
from runtime.services import Services

REPLIES_MEASURED = 200
"""The latest replies whose fingerprint is compared with the persona's."""

# measure -> (how to read it from a fingerprint, the difference that scores 0)
_MATCHED: dict[str, tuple[Callable[[Any], float], float]] = {
    "median_sentence_length": (lambda f: f.sentence_length["median"], 15.0),
    "question_share": (lambda f: f.sentence_types["question"], 0.5),
    "exclamation_share": (lambda f: f.sentence_types["exclamation"], 0.5),
    "formality": (lambda f: f.style["formality"], 0.6),
    "lexical_richness": (lambda f: f.style["lexical_richness"], 0.6),
    "hedges_per_100_words": (lambda f: f.rhetoric["hedges_per_100_words"], 4.0),
    "first_person_per_100_words": (lambda f: f.rhetoric["first_person_per_100_words"], 6.0),
    "second_person_per_100_words": (lambda f: f.rhetoric["second_person_per_100_words"], 6.0),
}
_STYLE_TRAITS = ("formality", "inquisitiveness", "enthusiasm", "confidence", "lexical_richness")
_NEXT = {
    "consistency": "replies drift from the configured traits: review the drifting traits, "
    "lock the ones that must hold, or let them evolve",
    "linguistic_match": "replies do not sound like the source writing: tighten the system "
    "prompt's description of the voice, or regenerate from more samples",
    "channel_compliance": "replies miss their channel's constraints: check the failed "
    "checks and the overlay's length range",
    "satisfaction": "users rate replies down: read the feedback and its reasons",
}


def _may_read_persona_wide(who: Principal, what: str) -> None:
    if not who.is_editor:
        raise ChatError(
            "forbidden", f"a persona's {what} comes from every user's chats: editors and admins"
        )


async def quality(services: Services, persona: Persona, who: Principal) -> dict[str, Any]:
    _may_read_persona_wide(who, "quality")
    parts: dict[str, dict[str, Any] | None] = {
        "consistency": await _consistency(services, persona),
        "linguistic_match": await _linguistic_match(services, persona),
        "channel_compliance": await _channels(services, persona),
        "satisfaction": await _satisfaction(services, persona),
    }
    scored = {k: v["score"] for k, v in parts.items() if v is not None}
    weakest = min(scored, key=lambda k: scored[k]) if scored else None
    return {
        "persona": {"id": str(persona.id), "slug": persona.slug, "name": persona.name},
        "overall": round(sum(scored.values()) / len(scored), 1) if scored else None,
        "parts": parts,
        "weakest": weakest,
        "next": _NEXT[weakest] if weakest else "not enough data yet: chat with the persona",
    }


async def _consistency(services: Services, persona: Persona) -> dict[str, Any] | None:
    tracker = services.agents.tracker
    _, turns = await tracker.profile(persona.id)
    if turns == 0:
        return None
    report = await tracker.drift(persona)
    return {
        "score": round(100 * report.score, 1),
        "drift_score": round(report.score, 4),
        "turns": turns,
        "drifting": list(report.drifting),
        "compared_traits": len(report.per_trait),
    }


async def _linguistic_match(services: Services, persona: Persona) -> dict[str, Any] | None:
    texts = await services.memory.transcripts.latest_replies(persona.id, REPLIES_MEASURED)
    try:
        replies = fingerprint(texts)
    except FingerprintError:
        return None
    analyses = await services.personas.analyses(persona.id)
    if analyses:
        source = analyses[0].fingerprint
        measures = {}
        for name, (read, scale) in _MATCHED.items():
            want = read(_Wrapped(source))
            got = read(replies)
            measures[name] = {
                "source": round(want, 3),
                "replies": round(got, 3),
                "match": round(max(0.0, 1 - abs(got - want) / scale), 3),
            }
        against = "source writing"
    else:
        configured = {t.name: t.value for t in persona.traits if t.name in _STYLE_TRAITS}
        if not configured:
            return None
        measures = {
            name: {
                "configured": round(value, 3),
                "replies": round(replies.style.get(name, 0.5), 3),
                "match": round(max(0.0, 1 - abs(replies.style.get(name, 0.5) - value)), 3),
            }
            for name, value in configured.items()
        }
        against = "configured style traits"
    score = 100 * sum(m["match"] for m in measures.values()) / len(measures)
    return {
        "score": round(score, 1),
        "against": against,
        "replies": len(texts),
        "words": replies.words,
        "measures": measures,
    }


class _Wrapped:
    """A stored fingerprint (JSON) read like a :class:`Fingerprint`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.sentence_length = data["sentence_length"]
        self.sentence_types = data["sentence_types"]
        self.style = data["style"]
        self.rhetoric = data["rhetoric"]


async def _channels(services: Services, persona: Persona) -> dict[str, Any] | None:
    stats = await channel_stats(services.pool, persona.id)
    replies = sum(s.replies for s in stats)
    if replies == 0:
        return None
    compliant = sum(s.compliant for s in stats)
    return {
        "score": round(100 * compliant / replies, 1),
        "replies": replies,
        "compliant": compliant,
        "channels": {
            s.channel: {"replies": s.replies, "compliant": s.compliant, "failed": s.failed_checks}
            for s in stats
        },
    }


async def _satisfaction(services: Services, persona: Persona) -> dict[str, Any] | None:
    rated = await services.analytics.ratings(persona.id)
    total = rated.up + rated.neutral + rated.down
    if total == 0:
        return None
    return {
        "score": round(100 * (rated.up + 0.5 * rated.neutral) / total, 1),
        "up": rated.up,
        "neutral": rated.neutral,
        "down": rated.down,
        "reasons": rated.reasons,
    }


async def analytics(
    services: Services, persona: Persona, since: dt.date, until: dt.date, who: Principal
) -> dict[str, Any]:
    """Per day from ``since`` to ``until`` (inclusive), in UTC."""
    _may_read_persona_wide(who, "analytics")
    daily = await services.analytics.daily(persona.id, since, until)
    days = []
    day = since
    while day <= until:
        t = daily.turns.get(day)
        up, down = daily.ratings.get(day, (0, 0))
        drift = daily.drift.get(day)
        days.append(
            {
                "day": day.isoformat(),
                "turns": int(t.turns) if t else 0,
                "users": int(t.users) if t else 0,
                "sessions": int(t.sessions) if t else 0,
                "feedback_up": int(up),
                "feedback_down": int(down),
                "first_token_ms": _pair(t.first_token_p50, t.first_token_p95) if t else None,
                "turn_ms": _pair(t.turn_p50, t.turn_p95) if t else None,
                "drift": None if drift is None else round(float(drift), 4),
            }
        )
        day += dt.timedelta(days=1)
    return {
        "persona": {"id": str(persona.id), "slug": persona.slug, "name": persona.name},
        "from": since.isoformat(),
        "to": until.isoformat(),
        "days": days,
        "totals": {
            "turns": sum(d["turns"] for d in days),
            "feedback_up": sum(d["feedback_up"] for d in days),
            "feedback_down": sum(d["feedback_down"] for d in days),
        },
    }


def _pair(p50: float | None, p95: float | None) -> dict[str, float] | None:
    if p50 is None or p95 is None:
        return None
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}
