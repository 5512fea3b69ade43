"""Trait tracking: store each reply's observations, keep the persona's observed profile
per session and overall, compute drift, and evolve opted-in traits.

Profiles live in PostgreSQL (``trait_profiles``) and in a small in-process cache so
``compose_prompt`` reads the drift without touching the database."""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agents.traits import (
    DriftReport,
    ObservedProfile,
    TraitChange,
    TraitObservation,
    TraitStat,
    drift,
    evolve,
    reinforcement_lines,
)
from personas import Actor, Persona, PersonaStore, SettingsPatch

log = logging.getLogger(__name__)

_EVOLVER = Actor("trait-evolution", is_admin=True)


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    drift_threshold: float = 0.25
    min_observations: int = 3
    evolution_rate: float = 0.05
    evolve_every_turns: int = 10
    evolution_min_observations: int = 10


@dataclass(frozen=True, slots=True)
class TraitUpdate:
    """What one turn's extraction changed: the drift reports and any evolution."""

    session_drift: DriftReport
    overall_drift: DriftReport
    evolved: tuple[TraitChange, ...]


class TraitTracker:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        personas: PersonaStore,
        settings: TrackerSettings | None = None,
        *,
        cache_size: int = 4_096,
    ) -> None:
        self._pool = pool
        self._personas = personas
        self.settings = settings or TrackerSettings()
        self._cache: OrderedDict[tuple[uuid.UUID, uuid.UUID | None], tuple[ObservedProfile, int]]
        self._cache = OrderedDict()
        self._cache_size = cache_size

    async def profile(
        self, persona_id: uuid.UUID, session_id: uuid.UUID | None = None
    ) -> tuple[ObservedProfile, int]:
        """The observed profile (and turn count), overall or for one session."""
        key = (persona_id, session_id)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "SELECT stats, turns FROM trait_profiles WHERE persona_id = %s"
                " AND session_id IS NOT DISTINCT FROM %s",
                (persona_id, session_id),
            )
            row = await cur.fetchone()
        value = (ObservedProfile(), 0) if row is None else (_decode(row["stats"]), row["turns"])
        self._remember(key, value)
        return value

    async def drift(self, persona: Persona, session_id: uuid.UUID | None = None) -> DriftReport:
        profile, _ = await self.profile(persona.id, session_id)
        return drift(
            persona.traits,
            profile,
            threshold=self.settings.drift_threshold,
            min_observations=self.settings.min_observations,
        )

    async def reinforcement(self, persona: Persona, session_id: uuid.UUID) -> list[str]:
        """Prompt lines that pull drifting traits back (closed-loop consistency)."""
        report = await self.drift(persona, session_id)
        if not report.drifting:
            return []
        return reinforcement_lines(report, persona.traits)

    async def record(
        self,
        persona: Persona,
        session_id: uuid.UUID,
        message_id: uuid.UUID,
        observations: Sequence[TraitObservation],
    ) -> TraitUpdate:
        """Store one reply's observations and fold them into both profiles."""
        if observations:
            async with self._pool.connection() as conn, conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO trait_observations (persona_id, session_id, message_id, trait,"
                    " value, method, confidence) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            persona.id,
                            session_id,
                            message_id,
                            o.trait,
                            o.value,
                            o.method,
                            o.confidence,
                        )
                        for o in observations
                    ],
                )
        session_profile, _ = await self._update(persona.id, session_id, observations)
        overall_profile, turns = await self._update(persona.id, None, observations)
        session_drift = drift(
            persona.traits,
            session_profile,
            threshold=self.settings.drift_threshold,
            min_observations=self.settings.min_observations,
        )
        overall_drift = drift(
            persona.traits,
            overall_profile,
            threshold=self.settings.drift_threshold,
            min_observations=self.settings.min_observations,
        )
        await self._store_metrics(persona.id, overall_drift.score)
        evolved: tuple[TraitChange, ...] = ()
        if turns % self.settings.evolve_every_turns == 0:
            evolved = await self._evolve(persona, overall_profile)
        return TraitUpdate(session_drift, overall_drift, evolved)

    async def _update(
        self,
        persona_id: uuid.UUID,
        session_id: uuid.UUID | None,
        observations: Sequence[TraitObservation],
    ) -> tuple[ObservedProfile, int]:
        # read-modify-write under a row lock: several nodes may record for one persona
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO trait_profiles (persona_id, session_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (persona_id, session_id),
            )
            cur = await conn.cursor(row_factory=dict_row).execute(
                "SELECT stats, turns FROM trait_profiles WHERE persona_id = %s"
                " AND session_id IS NOT DISTINCT FROM %s FOR UPDATE",
                (persona_id, session_id),
            )
            row = await cur.fetchone()
            assert row is not None
            profile = _decode(row["stats"]).update(observations)
            turns = int(row["turns"]) + 1
            await conn.execute(
                "UPDATE trait_profiles SET stats = %s, turns = %s, updated_at = now()"
                " WHERE persona_id = %s AND session_id IS NOT DISTINCT FROM %s",
                (Jsonb(_encode(profile)), turns, persona_id, session_id),
            )
        self._remember((persona_id, session_id), (profile, turns))
        return profile, turns

    async def _store_metrics(self, persona_id: uuid.UUID, drift_score: float) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO persona_metrics (persona_id, day, turns, drift)"
                " VALUES (%s, current_date, 1, %s) ON CONFLICT (persona_id, day)"
                " DO UPDATE SET turns = persona_metrics.turns + 1, drift = EXCLUDED.drift",
                (persona_id, drift_score),
            )

    async def _evolve(self, persona: Persona, profile: ObservedProfile) -> tuple[TraitChange, ...]:
        changes = evolve(
            persona.own_traits,
            profile,
            rate=self.settings.evolution_rate,
            min_observations=self.settings.evolution_min_observations,
        )
        if not changes:
            return ()
        patch = SettingsPatch.model_validate(
            {"traits": [{"name": c.name, "intensity": round(c.new, 4)} for c in changes]}
        )
        reason = "evolution: " + "; ".join(c.reason for c in changes)
        await self._personas.patch_settings(persona.id, patch, _EVOLVER, reason=reason[:500])
        log.info("persona %s evolved %d trait(s)", persona.slug, len(changes))
        return tuple(changes)

    def _remember(
        self, key: tuple[uuid.UUID, uuid.UUID | None], value: tuple[ObservedProfile, int]
    ) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _encode(profile: ObservedProfile) -> dict[str, Any]:
    return {
        "alpha": profile.alpha,
        "stats": {
            name: [s.mean, s.count, s.last, s.confidence] for name, s in profile.stats.items()
        },
    }


def _decode(raw: dict[str, Any]) -> ObservedProfile:
    if not raw:
        return ObservedProfile()
    stats = {name: TraitStat(*values) for name, values in raw.get("stats", {}).items()}
    return ObservedProfile(stats, float(raw.get("alpha", 0.1)))
