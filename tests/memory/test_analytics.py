"""The read-only aggregates behind a persona's quality and analytics: its replies'
ratings with their reasons, and per UTC day its turns, users, sessions, ratings and
latencies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory.record.analytics import Analytics
from memory.record.feedback import FeedbackStore
from memory.record.transcripts import Transcripts
from personas import Actor, PersonaStore
from tests.personas.factory import definition


async def test_ratings_and_days_are_counted(
    store: PersonaStore, db: AsyncConnectionPool[Any]
) -> None:
    persona = await store.create(definition(), Actor("t"))
    transcripts, feedback, analytics = Transcripts(db), FeedbackStore(db), Analytics(db)
    empty = await analytics.ratings(persona.id)
    assert (empty.up, empty.neutral, empty.down, empty.reasons) == (0, 0, 0, {})
    for user, rating, reason in (("u1", 1, None), ("u2", -1, "too_long"), ("u3", -1, "too_long")):
        session = await transcripts.create_session(user, [persona.id])
        asked, _ = await transcripts.store_user_message(
            session.id, user_id=user, speaker=user, text="hi", client_msg_id="c"
        )
        answer, _ = await transcripts.append_persona_message(
            session.id,
            persona_id=persona.id,
            speaker="Tutor",
            text="Hello.",
            reply_to=asked.id,
            timings={"first_token_ms": 100.0, "retrieve_ms": 20.0, "llm_ms": 400.0},
        )
        await feedback.rate(answer.id, user, rating)
        await feedback.tag(answer.id, user, reason)

    rated = await analytics.ratings(persona.id)
    assert (rated.up, rated.neutral, rated.down, rated.reasons) == (1, 0, 2, {"too_long": 2})

    today = answer.created_at.astimezone(dt.UTC).date()  # the replies' UTC day
    daily = await analytics.daily(persona.id, today - dt.timedelta(days=1), today)
    day = daily.turns[today]
    assert (day.turns, day.users, day.sessions) == (3, 3, 3)
    assert day.first_token_p50 == pytest.approx(120.0) and day.turn_p95 == pytest.approx(420.0)
    assert daily.ratings == {today: (1, 2)}
    assert daily.drift == {}
    assert today - dt.timedelta(days=1) not in daily.turns
