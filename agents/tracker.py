"""Trait tracking: store each reply's observations, keep the persona's observed profile
per session and overall, compute drift, and evolve opted-in traits.

Per reply, one statement stores the observations (one row per reply, see migration
0004), the message's summary and the session profile (see :meth:`TraitTracker.record`).
The overall profile of a persona is shared by all of its sessions (and nodes), so
folding every reply into its row would serialise all turns of a popular persona on one
row lock: replies are queued per persona instead and folded in batches (every
``flush_s``), which is also when drift metrics are stored and evolution runs.
Profiles are cached in-process, so ``prepare`` reads drift without the database.

The SQL lives in :class:`memory.record.trait_records.TraitRecords`, which stores profiles in
their encoded form; this module folds, encodes and decodes them."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

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
from memory.record.trait_records import StoredProfile, TraitRecords
from personas import Actor, Persona, PersonaError, PersonaStore, SettingsPatch

log = logging.getLogger(__name__)

_EVOLVER = Actor("trait-evolution", is_admin=True)


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    drift_threshold: float = 0.25
    min_observations: int = 3
    evolution_rate: float = 0.05
    evolve_every_turns: int = 10
    evolution_min_observations: int = 10
    flush_s: float = 2.0


@dataclass(frozen=True, slots=True)
class TraitUpdate:
    """What one reply's extraction changed: the session's drift, the persona's overall
    drift as last folded, and the traits that evolved since the persona's last reply
    (the reply that completes an evolution interval folds and evolves at once)."""

    session_drift: DriftReport
    overall_drift: DriftReport
    evolved: tuple[TraitChange, ...] = ()


Key = tuple[uuid.UUID, uuid.UUID | None]


class TraitTracker:
    """Open with ``async with`` (it runs the batch folder); one per process. Its records
    are stored through ``records``, by default a :class:`TraitRecords` on ``pool``."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        personas: PersonaStore,
        settings: TrackerSettings | None = None,
        *,
        cache_size: int = 4_096,
        records: TraitRecords | None = None,
    ) -> None:
        self._records = records or TraitRecords(pool)
        self._personas = personas
        self.settings = settings or TrackerSettings()
        self._cache: OrderedDict[Key, tuple[ObservedProfile, int]] = OrderedDict()
        self._cache_size = cache_size
        self._queued: defaultdict[uuid.UUID, list[Sequence[TraitObservation]]] = defaultdict(list)
        self._folding = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._evolved: dict[uuid.UUID, tuple[TraitChange, ...]] = {}

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._fold_loop(), name="trait-profile-folder")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.fold()

    # reads ----------------------------------------------------------------------------

    async def profile(
        self, persona_id: uuid.UUID, session_id: uuid.UUID | None = None
    ) -> tuple[ObservedProfile, int]:
        """The observed profile (and turn count), overall or for one session."""
        if session_id is None and persona_id in self._queued:
            await self.fold(persona_id)
        key = (persona_id, session_id)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        row = await self._records.load_profile(persona_id, session_id)
        value = (ObservedProfile(), 0) if row is None else (_decode(row.stats), row.turns)
        self._remember(key, value)
        return value

    async def drift(self, persona: Persona, session_id: uuid.UUID | None = None) -> DriftReport:
        profile, _ = await self.profile(persona.id, session_id)
        return self._drift(persona, profile)

    async def reinforcement(self, persona: Persona, session_id: uuid.UUID) -> list[str]:
        """Prompt lines that pull drifting traits back (closed-loop consistency)."""
        report = await self.drift(persona, session_id)
        if not report.drifting:
            return []
        return reinforcement_lines(report, persona.traits)

    # writes ---------------------------------------------------------------------------

    async def record(
        self,
        persona: Persona,
        session_id: uuid.UUID,
        message_id: uuid.UUID,
        observations: Sequence[TraitObservation],
        summary: Mapping[str, Any],
    ) -> TraitUpdate:
        """Store one reply's observations and summary, fold them into the session
        profile now and queue them for the persona's overall profile.

        One statement in the common case: the profile is folded from this process's
        copy and saved only if the row still has the turn count that copy was read at.
        If another process moved it on (or this one has no copy), the profile is
        re-read under a row lock and folded again."""
        key = (persona.id, session_id)
        known, known_turns = self._cache.get(key, (ObservedProfile(), 0))
        profile, turns = known.update(observations), known_turns + 1
        session_drift = self._drift(persona, profile)
        stored = await self._records.record(
            persona_id=persona.id,
            session_id=session_id,
            message_id=message_id,
            observations=[
                {"trait": o.trait, "value": o.value, "method": o.method, "confidence": o.confidence}
                for o in observations
            ],
            summary=summary,
            stats=_encode(profile),
            turns=turns,
            drift=session_drift.score,
            known_turns=known_turns,
        )
        if stored is None:  # the row moved on elsewhere: fold it again
            async with self._records.locked(persona.id, session_id) as row:
                profile, turns = _folded(row.stored, [observations])
                session_drift = self._drift(persona, profile)
                await row.save(_encode(profile), turns, session_drift.score)
        self._remember((persona.id, session_id), (profile, turns))
        if observations:
            self._queued[persona.id].append(observations)
            folded = self._cache.get((persona.id, None))
            every = self.settings.evolve_every_turns
            queued = len(self._queued[persona.id])
            if folded is not None and (folded[1] + queued) // every > folded[1] // every:
                await self.fold(persona.id)  # this reply completes an interval: evolve now
        overall, _ = self._cache.get((persona.id, None), (ObservedProfile(), 0))
        evolved = self._evolved.pop(persona.id, ())
        return TraitUpdate(session_drift, self._drift(persona, overall), evolved)

    async def fold(self, only: uuid.UUID | None = None) -> None:
        """Fold queued observations into the overall profiles (all personas, or one)."""
        async with self._folding:
            ids = [only] if only is not None else list(self._queued)
            for persona_id in ids:
                batches = self._queued.pop(persona_id, None)
                if batches:
                    try:
                        await self._fold_overall(persona_id, batches)
                    except Exception as exc:  # noqa: BLE001  (the folder must survive)
                        log.error(
                            "trait profile of persona %s not folded: %s: %s",
                            persona_id,
                            type(exc).__name__,
                            exc,
                        )

    async def _fold_overall(
        self, persona_id: uuid.UUID, batches: list[Sequence[TraitObservation]]
    ) -> None:
        try:
            persona = await self._personas.get(persona_id)
        except PersonaError:
            return  # deleted meanwhile
        async with self._records.locked(persona_id) as row:
            profile, turns = _folded(row.stored, batches)
            report = self._drift(persona, profile)
            await row.save_overall(_encode(profile), turns, report.score, replies=len(batches))
        self._remember((persona_id, None), (profile, turns))
        every = self.settings.evolve_every_turns
        if turns // every > (turns - len(batches)) // every:
            changes = await self._evolve(persona, profile)
            if changes:
                self._evolved[persona_id] = self._evolved.get(persona_id, ()) + changes

    async def _fold_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_s)
            await self.fold()

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
        try:
            await self._personas.patch_settings(persona.id, patch, _EVOLVER, reason=reason[:500])
        except PersonaError as exc:  # changed meanwhile: the next fold tries again
            log.warning("persona %s did not evolve: %s", persona.slug, exc)
            return ()
        log.info("persona %s evolved %d trait(s)", persona.slug, len(changes))
        return tuple(changes)

    def drift_of(self, persona: Persona, profile: ObservedProfile) -> DriftReport:
        """The drift ``profile`` shows from the persona's configured traits."""
        return self._drift(persona, profile)

    def _drift(self, persona: Persona, profile: ObservedProfile) -> DriftReport:
        return drift(
            persona.traits,
            profile,
            threshold=self.settings.drift_threshold,
            min_observations=self.settings.min_observations,
        )

    def _remember(self, key: Key, value: tuple[ObservedProfile, int]) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _folded(
    stored: StoredProfile, batches: Sequence[Sequence[TraitObservation]]
) -> tuple[ObservedProfile, int]:
    """A stored profile with ``batches`` (one per reply) folded in, and its turn count."""
    profile = _decode(stored.stats)
    for observations in batches:
        profile = profile.update(observations)
    return profile, stored.turns + len(batches)


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
