"""Feedback that acts: a rating may carry a reason (``too_long``, ``too_formal``...);
once ``FEEDBACK_THRESHOLD`` negative ratings of a persona's replies share a reason, the
matching evolvable trait moves one bounded step (as drift-driven evolution does), or,
when the persona lacks that trait, the matching style setting does. Each move is a new
persona version whose reason says why; locked traits never move. Ratings before a move
no longer count toward the next one."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agents.traits import canonical
from agents.traits.evolution import FEEDBACK_REASONS, feedback_change
from personas import Actor, PersonaError, PersonaStore, SettingsPatch
from runtime.errors import RuntimeLayerError

log = logging.getLogger(__name__)

FEEDBACK_THRESHOLD = 3
FEEDBACK_RATE = 0.05
REASON_PATTERN = r"^[a-z][a-z_]{0,39}$"
_ACTOR = Actor("feedback", is_admin=True)


class FeedbackError(RuntimeLayerError):
    """A feedback request refers to nothing that can be rated."""


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A setting feedback moved: which, from what to what, and the version it made."""

    setting: str
    old: float
    new: float
    reason: str
    version: int


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    message_id: uuid.UUID
    persona_id: uuid.UUID
    persona_slug: str
    user_id: str
    rating: int
    reason: str | None
    comment: str
    created_at: dt.datetime


async def tag_and_act(
    pool: AsyncConnectionPool[Any],
    personas: PersonaStore,
    message_id: uuid.UUID,
    user_id: str,
    rating: int,
    reason: str | None,
) -> Adjustment | None:
    """Record the reason of ``user_id``'s stored rating of ``message_id`` and, when
    enough negative ratings share it, move the matching setting."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE feedback f SET reason = %s FROM messages m"
            " WHERE f.message_id = %s AND f.user_id = %s AND m.id = f.message_id"
            " RETURNING m.persona_id",
            (reason, message_id, user_id),
        )
        row = await cur.fetchone()
    if row is None or row[0] is None or reason is None or rating >= 0:
        return None
    if reason not in FEEDBACK_REASONS:
        return None
    return await _maybe_adjust(pool, personas, row[0], reason)


async def _maybe_adjust(
    pool: AsyncConnectionPool[Any], personas: PersonaStore, persona_id: uuid.UUID, reason: str
) -> Adjustment | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM feedback f JOIN messages m ON m.id = f.message_id"
            " WHERE m.persona_id = %s AND f.reason = %s AND f.rating < 0"
            " AND f.created_at > coalesce((SELECT max(created_at) FROM feedback_actions"
            "     WHERE persona_id = %s AND reason = %s), '-infinity')",
            (persona_id, reason, persona_id, reason),
        )
        counted = await cur.fetchone()
    count = int(counted[0]) if counted else 0
    if count < FEEDBACK_THRESHOLD:
        return None
    try:
        persona = await personas.get(persona_id)
    except PersonaError:
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
            persona.id, SettingsPatch.model_validate(patch), _ACTOR, reason=why
        )
    except PersonaError as exc:
        log.warning("feedback did not adjust persona %s: %s", persona.slug, exc)
        return None
    change_text = f"{setting} {old:g} -> {new:g}"
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO feedback_actions (persona_id, reason, version, change)"
            " VALUES (%s, %s, %s, %s)",
            (persona.id, reason, updated.version, change_text),
        )
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
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT f.message_id, m.persona_id, p.slug AS persona_slug, f.user_id, f.rating,"
            " f.reason, f.comment, f.created_at"
            " FROM feedback f JOIN messages m ON m.id = f.message_id"
            " JOIN personas p ON p.id = m.persona_id"
            " WHERE (%(user)s::text IS NULL OR f.user_id = %(user)s)"
            " AND (%(persona)s::uuid IS NULL OR m.persona_id = %(persona)s)"
            " AND (%(before)s::timestamptz IS NULL OR f.created_at < %(before)s)"
            " ORDER BY f.created_at DESC, f.id DESC LIMIT %(limit)s",
            {"user": user_id, "persona": persona_id, "before": before, "limit": limit},
        )
        rows = await cur.fetchall()
    return [FeedbackRow(**r) for r in rows]
