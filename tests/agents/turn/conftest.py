"""The ``open_turn`` fixture: a turn on the real stores of the test databases, the seeded
fake embedder and a given fake chat model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.types import TurnRequest
from personas import Actor
from tests.agents.turn.helpers import QUESTION, OpenTurn, Recorder, Turn
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)


@pytest.fixture
def open_turn(services_factory: Any) -> OpenTurn:
    """``async with open_turn(model) as turn``: a turn for Albert Einstein answering Sam's
    stored question."""

    @asynccontextmanager
    async def make(model: FakeStreamingChatModel) -> AsyncIterator[Turn]:
        async with services_factory(model) as services:
            persona = await services.personas.create(
                definition("einstein", name="Albert Einstein", style={"max_tokens": 512}), ADMIN
            )
            transcripts = services.memory.transcripts
            session = await transcripts.create_session("u1", [persona.id])
            message, _ = await transcripts.store_user_message(
                session.id, user_id="u1", speaker="Sam", text=QUESTION, client_msg_id="c1"
            )
            request = TurnRequest(
                session_id=session.id,
                persona=persona,
                user_id="u1",
                user_name="Sam",
                user_message=message,
            )
            yield Turn(services, model, request, Recorder(), services.agents)

    return make
