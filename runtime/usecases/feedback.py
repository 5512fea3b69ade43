"""Feedback that acts: a rating may carry a reason (``too_long``, ``too_formal``...);
once ``FEEDBACK_THRESHOLD`` distinct users have rated the current version's replies
negatively with the same reason, the matching evolvable trait moves one bounded step
(as drift-driven evolution does), or, when the persona lacks that trait, the matching
style setting does. Each move is a new persona version whose reason says why; locked
traits never move. Ratings before a move no longer count toward the next one, and
rating a reply again does not count it again. Feedback acts with no role of its own
(``FEEDBACK_ACTOR``, an editor but not an admin): a protected persona, which only an
admin may change, is never moved by feedback, whoever rates."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from psycopg_pool import AsyncConnectionPool

from agents.traits import canonical
from agents.traits.evolution import FEEDBACK_REASONS, feedback_change
from memory.record.feedback import Feedback, FeedbackRow, FeedbackStore
from personas import Actor, PersonaError, PersonaStore, SettingsPatch
from runtime.errors import ChatError
from runtime.services import Services

log = logging.getLogger(__name__)

FEEDBACK_THRESHOLD = 3
FEEDBACK_RATE = 0.05
REASON_PATTERN = r"^[a-z][a-z_]{0,39}$"
FEEDBACK_ACTOR = Actor("feedback", is_admin=False, can_edit=True)


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A setting feedback moved: which, from what to what, and the version it made."""

    setting: str
    old: float
    new: float
    reason: str
    version: int


@dataclass(frozen=True, slots=True)
class GivenFeedback:
    """A rating as stored (with its reason) and the setting it moved, if any."""

    feedback: Feedback
    adjusted: Adjustment | None


async def give_feedback(
    services: Services,
    user_id: str,
    message_id: uuid.UUID,
    rating: int,
    comment: str = "",
    reason: str | None = None,
) -> GivenFeedback:
    """Rate a message of one of ``user_id``'s sessions (a second rating replaces the
    first) with an optional reason; when enough negative ratings of the persona's replies
    share that reason, the matching setting moves (see the module's docstring)."""
    stored = await services.feedback.rate(message_id, user_id, rating, comment)
    if stored is None:
        if await services.memory.transcripts.message_exists(message_id):
            raise ChatError("forbidden", f"message '{message_id}' is not in one of your sessions")
        raise ChatError("message_not_found", f"message '{message_id}' not found")
    adjusted = await tag_and_act(
        services.feedback, services.personas, stored.message_id, stored.user_id, rating, reason
    )
    return GivenFeedback(replace(stored, reason=reason), adjusted)


async def tag_and_act(
    feedback: FeedbackStore,
    personas: PersonaStore,
    message_id: uuid.UUID,
    user_id: str,
    rating: int,
    reason: str | None,
) -> Adjustment | None:
    """Record the reason of ``user_id``'s stored rating of ``message_id`` and, when
    enough negative ratings share it, move the matching setting."""
    persona_id = await feedback.tag(message_id, user_id, reason)
    if persona_id is None or reason is None or rating >= 0:
        return None
    if reason not in FEEDBACK_REASONS:
        return None
    return await _maybe_adjust(feedback, personas, persona_id, reason)


async def _maybe_adjust(
    feedback: FeedbackStore, personas: PersonaStore, persona_id: uuid.UUID, reason: str
) -> Adjustment | None:
    try:
        persona = await personas.get(persona_id)
    except PersonaError:
        return None
    if persona.protected and not FEEDBACK_ACTOR.is_admin:
        return None  # only an admin changes a protected persona; ratings are still kept
    count = await feedback.users_since_last_action(persona_id, reason, since=persona.updated_at)
    if count < FEEDBACK_THRESHOLD:
        return None
    name, direction, style_field, style_step = FEEDBACK_REASONS[reason]
    change = feedback_change(persona.own_traits, reason, count, rate=FEEDBACK_RATE)
    has_trait = any(canonical(t.name) == canonical(name) for t in persona.own_traits)
    patch: dict[str, Any]
    if change is not None:
        setting, old, new, why = change.name, change.old, change.new, change.reason
        patch = {"traits": [{"name": change.name, "intensity": round(new, 4)}]}
    elif not has_trait and style_field is not None:
        old = float(getattr(persona.style, style_field))
        if style_field == "max_tokens":
            new = float(max(16, min(8192, round(old * (1 + direction * style_step)))))
        else:
            new = round(max(0.0, min(1.0, old + direction * style_step)), 4)
        if new == old:
            return None
        setting = f"style.{style_field}"
        why = f"feedback: {count} negative ratings '{reason.replace('_', ' ')}' -> {setting}"
        patch = {"style": {style_field: int(new) if style_field == "max_tokens" else new}}
    else:
        log.info(
            "feedback %s on persona %s moves nothing (no evolvable %s)", reason, persona.slug, name
        )
        return None
    try:
        updated = await personas.patch_settings(
            persona.id, SettingsPatch.model_validate(patch), FEEDBACK_ACTOR, reason=why
        )
    except PersonaError as exc:
        log.warning("feedback did not adjust persona %s: %s", persona.slug, exc)
        return None
    change_text = f"{setting} {old:g} -> {new:g}"
    await feedback.record_action(persona.id, reason, updated.version, change_text)
    log.info("persona %s: %s (%s)", persona.slug, change_text, why)
    return Adjustment(setting, old, new, why, updated.version)


async def list_feedback(
    pool: AsyncConnectionPool[Any],
    *,
    user_id: str | None,
    persona_id: uuid.UUID | None = None,
    limit: int = 100,
    before: dt.datetime | None = None,
) -> list[FeedbackRow]:
    """Ratings newest first: one user's (``user_id``) or everyone's (None)."""
    return await FeedbackStore(pool).list(
        user_id=user_id, persona_id=persona_id, limit=limit, before=before
    )
