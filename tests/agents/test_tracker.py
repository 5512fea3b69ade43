"""The trait tracker against PostgreSQL: one reply's observations, summary and session
profile are stored together, and processes that share a session never lose a turn."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agents.tracker import TraitTracker
from agents.traits import ObservedProfile, TraitObservation
from memory.record.transcripts import Transcripts
from personas import Actor, Persona, PersonaStore
from tests.personas.factory import definition

ADMIN = Actor("tests", is_admin=True)


def reply(i: int) -> list[TraitObservation]:
    return [
        TraitObservation("patience", (i % 10) / 10, "stylometry", 0.8),
        TraitObservation("curiosity", 1 - (i % 7) / 7, "prototype", 0.5),
    ]


async def replies(
    transcripts: Transcripts, persona: Persona, session_id: uuid.UUID, n: int
) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        user, _ = await transcripts.store_user_message(
            session_id, user_id="u1", speaker="Ann", text=f"question {i}", client_msg_id=f"c{i}"
        )
        message, _ = await transcripts.append_persona_message(
            session_id,
            persona_id=persona.id,
            speaker=persona.name,
            text=f"answer {i}",
            reply_to=user.id,
        )
        ids.append(message.id)
    return ids


async def stored(pool: AsyncConnectionPool[Any], persona: Persona, session_id: uuid.UUID) -> Any:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT turns, stats, drift FROM trait_profiles"
            " WHERE persona_id = %s AND session_id = %s",
            (persona.id, session_id),
        )
        profile = await cur.fetchone()
        cur = await conn.execute(
            "SELECT count(*) FROM trait_observations WHERE session_id = %s", (session_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        cur = await conn.execute(
            "SELECT count(*) FROM messages WHERE session_id = %s AND extracted_traits IS NOT NULL"
            " AND extracted_traits <> '{}'::jsonb",
            (session_id,),
        )
        summarised = await cur.fetchone()
        assert summarised is not None
    return profile, row[0], summarised[0]


@pytest.mark.parametrize("processes", [1, 2, 3])
async def test_turns_recorded_by_several_processes_fold_like_one(
    db: AsyncConnectionPool[Any], store: PersonaStore, processes: int
) -> None:
    """Trackers of different processes take turns on one session, each with its own
    (soon stale) copy of the profile: every turn is folded exactly once, in order."""
    persona = await store.create(definition(), ADMIN)
    transcripts = Transcripts(db)
    session = await transcripts.create_session("u1", [persona.id])
    message_ids = await replies(transcripts, persona, session.id, 9)
    trackers = [TraitTracker(db, store) for _ in range(processes)]
    for i, message_id in enumerate(message_ids):
        update = await trackers[i % processes].record(
            persona, session.id, message_id, reply(i), {"patience": {"value": 0.5}}
        )
        assert update.session_drift is not None

    expected = ObservedProfile()
    for i in range(len(message_ids)):
        expected = expected.update(reply(i))
    profile, observations, summarised = await stored(db, persona, session.id)
    assert profile["turns"] == len(message_ids)
    assert observations == 2 * len(message_ids)
    assert summarised == len(message_ids)
    for name, (mean, count, _last, _confidence) in profile["stats"]["stats"].items():
        assert count == expected.stats[name].count
        assert mean == pytest.approx(expected.stats[name].mean)
    # every tracker now reads the stored profile, whatever copy it had
    for tracker in trackers:
        tracker._cache.clear()
        seen, turns = await tracker.profile(persona.id, session.id)
        assert turns == len(message_ids)
        assert seen.stats["patience"].count == expected.stats["patience"].count


async def test_a_reply_with_nothing_observed_still_counts_as_a_turn(
    db: AsyncConnectionPool[Any], store: PersonaStore
) -> None:
    persona = await store.create(definition(), ADMIN)
    transcripts = Transcripts(db)
    session = await transcripts.create_session("u1", [persona.id])
    (message_id,) = await replies(transcripts, persona, session.id, 1)
    await TraitTracker(db, store).record(persona, session.id, message_id, [], {})
    profile, observations, _ = await stored(db, persona, session.id)
    assert (profile["turns"], observations) == (1, 0)


async def test_a_failing_record_stores_nothing_of_that_reply(
    db: AsyncConnectionPool[Any], store: PersonaStore
) -> None:
    """Observations, summary and profile go together: a reply whose message is gone
    (deleted meanwhile) leaves no half of its record behind."""
    persona = await store.create(definition(), ADMIN)
    transcripts = Transcripts(db)
    session = await transcripts.create_session("u1", [persona.id])
    tracker = TraitTracker(db, store)
    with pytest.raises(Exception, match="foreign key"):
        await tracker.record(persona, session.id, uuid.uuid4(), reply(1), {"x": 1})
    profile, observations, _ = await stored(db, persona, session.id)
    assert profile is None and observations == 0
    # and the tracker's copy was not advanced by the failed turn
    (message_id,) = await replies(transcripts, persona, session.id, 1)
    await tracker.record(persona, session.id, message_id, reply(2), {"x": 1})
    profile, observations, _ = await stored(db, persona, session.id)
    assert (profile["turns"], observations) == (1, 2)


async def test_deleting_a_session_deletes_its_observations(
    db: AsyncConnectionPool[Any], store: PersonaStore
) -> None:
    """Observations hang off their reply's message (the persona and session columns are
    not foreign keys), so a forgotten session takes them along."""
    persona = await store.create(definition(), ADMIN)
    transcripts = Transcripts(db)
    kept = await transcripts.create_session("u1", [persona.id])
    forgotten = await transcripts.create_session("u1", [persona.id])
    tracker = TraitTracker(db, store)
    for session in (kept, forgotten):
        for i, message_id in enumerate(await replies(transcripts, persona, session.id, 2)):
            await tracker.record(persona, session.id, message_id, reply(i), {})
    await transcripts.delete_session(forgotten.id)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT session_id, count(*) FROM trait_observations"
            " WHERE persona_id = %s GROUP BY session_id",
            (persona.id,),
        )
        assert await cur.fetchall() == [(kept.id, 4)]
