"""A whole turn on the real embedded model (SmolLM2-135M via llama-cpp-python)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.types import NullEvents
from personas import Actor
from tests.personas.factory import definition

pytestmark = pytest.mark.slow


async def test_a_turn_on_the_local_model_streams_and_stores(services_factory: Any) -> None:
    pytest.importorskip("llama_cpp", reason="the 'local' extra (llama-cpp-python) is not installed")
    from agents.local_llm import LocalChatModel

    model = LocalChatModel(timeout_s=120)
    async with services_factory(model) as services:
        persona = await services.personas.create(
            definition(
                "tutor", style={"max_tokens": 48, "temperature": 0.2, "default_mode": "educator"}
            ),
            Actor("admin", is_admin=True),
        )
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [persona.id])
        msg, _ = await transcripts.store_user_message(
            session.id,
            user_id="u1",
            speaker="Uma",
            text="What do plants need to grow?",
            client_msg_id="c1",
        )
        tokens: list[str] = []

        class Events(NullEvents):
            async def token(self, persona: Any, reply_id: Any, delta: str) -> None:
                tokens.append(delta)

        [result] = await services.director.respond(session, msg, user_name="Uma", events=Events())
        assert result.status == "complete", result.error
        assert len(tokens) > 1, "the reply streamed in several pieces"
        assert "".join(tokens).strip().startswith(result.message.text[:10])
        assert result.message.text and result.timings["first_token_ms"] > 0
        assert [m.role for m in (await transcripts.history(session.id)).items] == [
            "user",
            "persona",
        ]
        assert await services.memory.index.count(str(persona.id)) == 2
