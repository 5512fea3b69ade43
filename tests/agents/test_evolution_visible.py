"""Evolution is visible: the reply that completes an evolution interval reports the traits
that moved (``TraitUpdate.evolved``), the persona has a new version saying why, and
locked traits never move. Feedback tagged with a reason moves the matching setting by the
same bounded, versioned step."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from agents.tracker import TrackerSettings, TraitTracker
from agents.traits import TraitObservation
from memory.record.feedback import FeedbackStore
from memory.record.transcripts import Transcripts
from personas import Actor, PersonaStore
from runtime.usecases.feedback import FEEDBACK_THRESHOLD, list_feedback, tag_and_act
from tests.agents.test_tracker import replies
from tests.personas.factory import definition

ADMIN = Actor("tests", is_admin=True)
TRAITS = [
    {"name": "patience", "type": "behaviour", "value": 0.9, "evolves": True},
    {"name": "formality", "type": "style", "value": 0.8, "locked": True},
    {"name": "verbosity", "type": "style", "value": 0.6, "evolves": True},
]


async def test_the_reply_that_evolves_a_trait_reports_it(
    db: AsyncConnectionPool[Any], store: PersonaStore
) -> None:
    persona = await store.create(definition(traits=TRAITS), ADMIN)
    transcripts = Transcripts(db)
    session = await transcripts.create_session("u1", [persona.id])
    settings = TrackerSettings(evolve_every_turns=5, evolution_min_observations=5, flush_s=3600)
    tracker = TraitTracker(db, store, settings)
    seen = [
        TraitObservation("patience", 0.2, "stylometry", 1.0),
        TraitObservation("formality", 0.1, "stylometry", 1.0),
    ]
    await tracker.profile(persona.id)  # the overall profile is known to this process
    evolved = []
    for i, message_id in enumerate(await replies(transcripts, persona, session.id, 10)):
        update = await tracker.record(persona, session.id, message_id, seen, {})
        evolved.append((i, update.evolved))
    moved = [(i, changes) for i, changes in evolved if changes]
    assert [i for i, _ in moved] == [4, 9], "reported by the 5th and 10th replies"
    first = moved[0][1]
    assert [c.name for c in first] == ["patience"], "the locked formality never moves"
    assert first[0].new < first[0].old == 0.9
    assert first[0].old - first[0].new <= settings.evolution_rate + 1e-9, "a bounded step"

    now = await store.get(persona.id)
    assert now.trait("formality").value == 0.8  # type: ignore[union-attr]
    assert now.trait("patience").value == pytest.approx(moved[1][1][0].new)  # type: ignore[union-attr]
    reasons = [v.reason for v in await store.versions(persona.id)]
    assert reasons[0] == "created" and len(reasons) == 3
    assert all(r.startswith("evolution: observed patience lower") for r in reasons[1:])


async def test_repeated_negative_feedback_moves_the_matching_setting(
    db: AsyncConnectionPool[Any], store: PersonaStore
) -> None:
    persona = await store.create(definition(traits=TRAITS), ADMIN)
    plain = await store.create(definition("plain-tutor"), ADMIN)
    transcripts = Transcripts(db)
    feedback = FeedbackStore(db)

    async def rate(p: Any, user: str, reason: str, rating: int = -1) -> Any:
        session = await transcripts.create_session(user, [p.id])
        (message_id,) = await replies(transcripts, p, session.id, 1)
        assert await feedback.rate(message_id, user, rating) is not None
        return await tag_and_act(feedback, store, message_id, user, rating, reason)

    # too long: verbosity (evolves) goes down one step, once enough ratings agree
    outcomes = [await rate(persona, f"u{i}", "too_long") for i in range(FEEDBACK_THRESHOLD)]
    assert outcomes[:-1] == [None] * (FEEDBACK_THRESHOLD - 1)
    moved = outcomes[-1]
    assert moved is not None and moved.setting == "verbosity"
    assert (moved.old, moved.new) == (0.6, 0.55)
    after = await store.get(persona.id)
    assert after.trait("verbosity").value == 0.55  # type: ignore[union-attr]
    assert (await store.versions(persona.id))[-1].reason.startswith("feedback: 3 negative")
    # the ratings that caused a move do not count again
    assert await rate(persona, "u9", "too_long") is None

    # too formal: formality is locked, so nothing moves however many agree
    for i in range(FEEDBACK_THRESHOLD + 1):
        assert await rate(persona, f"f{i}", "too_formal") is None
    assert (await store.get(persona.id)).trait("formality").value == 0.8  # type: ignore[union-attr]
    # positive ratings with a reason move nothing
    assert await rate(persona, "p1", "too_long", rating=1) is None

    # a persona without a verbosity trait: its style's max_tokens shrinks instead
    for i in range(FEEDBACK_THRESHOLD):
        last = await rate(plain, f"v{i}", "too_long")
    assert last is not None and last.setting == "style.max_tokens"
    assert (await store.get(plain.id)).style.max_tokens == round(512 * 0.85)

    mine = await list_feedback(db, user_id="u1")
    assert [(f.user_id, f.reason, f.rating) for f in mine] == [("u1", "too_long", -1)]
    everyone = await list_feedback(db, user_id=None, persona_id=persona.id)
    assert len(everyone) == FEEDBACK_THRESHOLD + 1 + FEEDBACK_THRESHOLD + 1 + 1


async def test_feedback_counts_users_not_ratings_and_never_moves_a_protected_persona(
    db: AsyncConnectionPool[Any], store: PersonaStore
) -> None:
    """One user rating many replies, or the same replies again and again, is one voice;
    and a protected persona (only an admin changes it) is never moved by feedback."""
    plain = await store.create(definition("plain-tutor"), ADMIN)
    guarded = await store.create(definition("guarded-tutor", protected=True), ADMIN)
    transcripts = Transcripts(db)
    feedback = FeedbackStore(db)

    async def rate_all(p: Any, user: str, ids: list[Any]) -> list[Any]:
        moved = []
        for message_id in ids:
            assert await feedback.rate(message_id, user, -1) is not None
            moved.append(await tag_and_act(feedback, store, message_id, user, -1, "too_long"))
        return moved

    session = await transcripts.create_session("carol", [plain.id])
    carols = await replies(transcripts, plain, session.id, FEEDBACK_THRESHOLD)
    for _ in range(3):  # three rounds of the same three ratings
        assert await rate_all(plain, "carol", carols) == [None] * FEEDBACK_THRESHOLD
    assert (await store.get(plain.id)).version == 1, "one user is one voice"

    for i in range(FEEDBACK_THRESHOLD + 1):
        s = await transcripts.create_session(f"g{i}", [guarded.id])
        assert await rate_all(guarded, f"g{i}", await replies(transcripts, guarded, s.id, 1)) == [
            None
        ]
    after = await store.get(guarded.id)
    assert (after.version, after.style.max_tokens, after.protected) == (1, 512, True)
    assert len(await list_feedback(db, user_id=None, persona_id=guarded.id)) == 4, "still kept"
