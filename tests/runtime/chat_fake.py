"""``personae chat`` in this process on the fake model, for the terminal tests:
``python -m tests.runtime.chat_fake`` with the usual PERSONAE_* settings. It imports the
character card of ``tests.personas.test_cards`` (a persona that greets) and chats with
it; ``FAKE_TOKENS`` / ``FAKE_TOKEN_DELAY_S`` shape the fake replies."""

from __future__ import annotations

import argparse
import json
import os
import sys

from agents.fake_llm import FakeStreamingChatModel
from memory import FakeEmbedder
from personas import Actor
from personas.card_store import CardStore
from personas.cards import parse_card
from runtime.cli.chat import chat_here
from runtime.infra.loop import run
from runtime.services import Overrides, open_services
from runtime.settings import load_settings
from tests.personas.test_cards import v2

REPLY = "The storm came from the west and took the mainmast first."


async def main() -> int:
    settings = load_settings()
    model = FakeStreamingChatModel(
        reply=REPLY,
        token_count=int(os.environ.get("FAKE_TOKENS", "10")),
        token_delay_s=float(os.environ.get("FAKE_TOKEN_DELAY_S", "0")),
    )
    overrides = Overrides(embedder=FakeEmbedder(64, seed=5), chat_model=lambda: model)
    async with open_services(settings, overrides=overrides) as services:
        definition, card = parse_card(json.dumps(v2()), source="mira.json")
        persona = await services.personas.create(definition, Actor("a", is_admin=True))
        await CardStore(services.pool).save(persona.id, card)
        args = argparse.Namespace(persona=definition.slug, session=None, user="alice")
        code = await chat_here(services, args)
        # what the chat stored, for the test to read
        for session in await services.memory.transcripts.list_sessions("alice"):
            for m in (await services.memory.transcripts.history(session.id)).items:
                print(f"stored: {m.role} cut={m.cut} {m.text!r}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(run(main(), load_settings().event_loop))
