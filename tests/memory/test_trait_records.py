"""The trait record store against PostgreSQL: a reply's record is one statement that saves
its session profile only over the turn count it was folded from, a locked profile row
never loses a concurrent writer's turn, and the overall fold counts the day's turns."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from memory.record.trait_records import TraitRecords
from memory.record.transcripts import Transcripts
from personas import Actor, PersonaStore
from tests.personas.factory import definition

ADMIN = Actor("tests", is_admin=True)


@dataclass(frozen=True, slots=True)
class Conversation:
    records: TraitRecords
    pool: AsyncConnectionPool[Any]
    persona_id: uuid.UUID
    session_id: uuid.UUID
    replies: tuple[uuid.UUID, ...]


@pytest.fixture
async def conversation(db: AsyncConnectionPool[Any], store: PersonaStore) -> Conversation:
    """A persona, a session with it and three of its replies."""
    persona = await store.create(definition(), ADMIN)
    transcripts = Transcripts(db)
    session = await transcripts.create_session("u1", [persona.id])
    replies = []
    for i in range(3):
        user, _ = await transcripts.store_user_message(
            session.id, user_id="u1", speaker="Ann", text=f"question {i}", client_msg_id=f"c{i}"
        )
        message, _ = await transcripts.append_persona_message(
            session.id,
            persona_id=persona.id,
            speaker=persona.name,
            text=f"answer {i}",
            reply_to=user.id,
        )
        replies.append(message.id)
    return Conversation(TraitRecords(db), db, persona.id, session.id, tuple(replies))


def profile(count: int, mean: float = 0.5) -> dict[str, Any]:
    return {"alpha": 0.1, "stats": {"patience": [mean, count, mean, 0.8]}}


def observed(value: float) -> list[dict[str, Any]]:
    return [
        {"trait": "patience", "value": value, "method": "stylometry", "confidence": 0.8},
        {"trait": "curiosity", "value": 0.3, "method": "prototype", "confidence": 0.5},
    ]


async def rows(pool: AsyncConnectionPool[Any], sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
        return await cur.fetchall()


async def profile_rows(c: Conversation) -> list[dict[str, Any]]:
    return await rows(
        c.pool,
        "SELECT session_id, stats, turns, drift FROM trait_profiles WHERE persona_id = %s"
        " ORDER BY session_id NULLS FIRST",
        c.persona_id,
    )


async def record(
    c: Conversation, reply: int, *, turns: int, known_turns: int, mean: float = 0.5
) -> int | None:
    return await c.records.record(
        persona_id=c.persona_id,
        session_id=c.session_id,
        message_id=c.replies[reply],
        observations=observed(mean),
        summary={"patience": {"value": mean}},
        stats=profile(turns, mean),
        turns=turns,
        drift=mean,
        known_turns=known_turns,
    )


async def test_a_record_stores_observations_summary_and_session_profile(
    conversation: Conversation,
) -> None:
    c = conversation
    assert await record(c, 0, turns=1, known_turns=0, mean=0.4) == 1

    observations = await rows(
        c.pool,
        "SELECT message_id, persona_id, session_id, observations FROM reply_observations",
    )
    assert observations == [
        {
            "message_id": c.replies[0],
            "persona_id": c.persona_id,
            "session_id": c.session_id,
            "observations": observed(0.4),
        }
    ]
    summaries = await rows(
        c.pool, "SELECT id, extracted_traits FROM messages WHERE role = 'persona' ORDER BY seq"
    )
    assert [m["extracted_traits"] for m in summaries] == [{"patience": {"value": 0.4}}, {}, {}]
    assert await profile_rows(c) == [
        {"session_id": c.session_id, "stats": profile(1, 0.4), "turns": 1, "drift": 0.4}
    ]
    loaded = await c.records.load_profile(c.persona_id, c.session_id)
    assert loaded is not None and (loaded.stats, loaded.turns) == (profile(1, 0.4), 1)

    # the next reply over the turn count now stored moves the profile on
    assert await record(c, 1, turns=2, known_turns=1, mean=0.6) == 2
    assert await profile_rows(c) == [
        {"session_id": c.session_id, "stats": profile(2, 0.6), "turns": 2, "drift": 0.6}
    ]
    assert await c.records.load_profile(c.persona_id) is None  # no overall profile yet


async def test_a_reply_with_nothing_observed_stores_no_observations_row(
    conversation: Conversation,
) -> None:
    c = conversation
    turns = await c.records.record(
        persona_id=c.persona_id,
        session_id=c.session_id,
        message_id=c.replies[0],
        observations=[],
        summary={},
        stats=profile(0),
        turns=1,
        drift=1.0,
        known_turns=0,
    )
    assert turns == 1
    assert await rows(c.pool, "SELECT message_id FROM reply_observations") == []
    assert [p["turns"] for p in await profile_rows(c)] == [1]


async def test_a_record_over_a_stale_turn_count_leaves_the_profile_alone(
    conversation: Conversation,
) -> None:
    """Another process moved the session profile on: the profile is not saved (None),
    while the reply's observations and summary are stored all the same."""
    c = conversation
    assert await record(c, 0, turns=1, known_turns=0, mean=0.4) == 1
    before = await profile_rows(c)

    assert await record(c, 1, turns=1, known_turns=0, mean=0.9) is None
    assert await profile_rows(c) == before
    stored = await rows(
        c.pool, "SELECT observations FROM reply_observations WHERE message_id = %s", c.replies[1]
    )
    assert stored == [{"observations": observed(0.9)}]
    (message,) = await rows(
        c.pool, "SELECT extracted_traits FROM messages WHERE id = %s", c.replies[1]
    )
    assert message["extracted_traits"] == {"patience": {"value": 0.9}}


async def test_a_record_for_a_missing_message_stores_nothing(
    conversation: Conversation,
) -> None:
    c = conversation
    with pytest.raises(Exception, match="foreign key"):
        await c.records.record(
            persona_id=c.persona_id,
            session_id=c.session_id,
            message_id=uuid.uuid4(),
            observations=observed(0.5),
            summary={"x": 1},
            stats=profile(1),
            turns=1,
            drift=0.5,
            known_turns=0,
        )
    assert await profile_rows(c) == []
    assert await rows(c.pool, "SELECT message_id FROM reply_observations") == []


@pytest.mark.parametrize("overall", [False, True], ids=["session", "overall"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-row", "existing-row"])
async def test_two_writers_of_a_locked_profile_lose_no_turn(
    conversation: Conversation, overall: bool, existing: bool
) -> None:
    """The first writer holds the row while the second tries to read it: the second
    reads what the first saved, so both turns are folded (a lost update saves one)."""
    c = conversation
    session_id = None if overall else c.session_id
    if existing:
        async with c.records.locked(c.persona_id, session_id) as row:
            await row.save(profile(1), 1, 0.5)
    base = int(existing)
    first_holds = asyncio.Event()

    async def write(hold: bool) -> int:
        async with c.records.locked(c.persona_id, session_id) as row:
            if hold:
                first_holds.set()
                await asyncio.sleep(0.3)  # the other writer reaches the row meanwhile
            count = row.stored.stats.get("stats", {}).get("patience", [0, 0])[1] + 1
            await row.save(profile(count), row.stored.turns + 1, 0.5)
            return row.stored.turns

    first = asyncio.create_task(write(hold=True))
    await first_holds.wait()
    second = asyncio.create_task(write(hold=False))
    read = await asyncio.gather(first, second)

    assert sorted(read) == [base, base + 1]
    (saved,) = await profile_rows(c)
    assert saved["session_id"] == session_id
    assert (saved["turns"], saved["stats"]) == (base + 2, profile(base + 2))


async def test_a_failing_locked_fold_saves_nothing(conversation: Conversation) -> None:
    c = conversation
    assert await record(c, 0, turns=1, known_turns=0) == 1
    before = await profile_rows(c)
    with pytest.raises(RuntimeError):
        async with c.records.locked(c.persona_id, c.session_id) as row:
            await row.save(profile(9), 9, 0.1)
            raise RuntimeError("fold failed")
    assert await profile_rows(c) == before


async def test_save_overall_saves_the_profile_and_adds_the_days_turns(
    conversation: Conversation,
) -> None:
    c = conversation
    async with c.records.locked(c.persona_id) as row:
        assert (row.stored.stats, row.stored.turns) == ({}, 0)  # created empty
        await row.save_overall(profile(3), 3, 0.8, replies=3)
    async with c.records.locked(c.persona_id) as row:
        assert (row.stored.stats, row.stored.turns) == (profile(3), 3)
        await row.save_overall(profile(5), 5, 0.6, replies=2)

    assert await profile_rows(c) == [
        {"session_id": None, "stats": profile(5), "turns": 5, "drift": 0.6}
    ]
    metrics = await rows(
        c.pool,
        "SELECT day = current_date AS today, turns, drift FROM persona_metrics"
        " WHERE persona_id = %s",
        c.persona_id,
    )
    assert metrics == [{"today": True, "turns": 5, "drift": pytest.approx(0.6)}]


async def test_save_overall_is_only_for_the_overall_profile(conversation: Conversation) -> None:
    c = conversation
    with pytest.raises(ValueError):
        async with c.records.locked(c.persona_id, c.session_id) as row:
            await row.save_overall(profile(1), 1, 0.5, replies=1)
    assert await rows(c.pool, "SELECT turns FROM persona_metrics") == []
