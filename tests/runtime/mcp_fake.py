"""``personae mcp`` on the fake model and embedder, for tests of the stdio transport:
``python -m tests.runtime.mcp_fake USER`` with the usual PERSONAE_* settings serves the
MCP tools on its stdin and stdout as USER, exactly as the command does."""

from __future__ import annotations

import sys

from agents.fake_llm import FakeStreamingChatModel
from memory import FakeEmbedder
from runtime.cli.mcp import serve_stdio
from runtime.infra.auth import Principal
from runtime.infra.loop import run
from runtime.services import Overrides
from runtime.settings import Settings, load_settings

REPLY = "Miso is a fine name for a cat, Uma."
TOOLS = [
    "list_personas",
    "search_personas",
    "search_memories",
    "list_memories",
    "remember",
    "forget",
    "list_facts",
    "correct_fact",
    "delete_fact",
    "start_session",
    "chat",
]
"""The tools an MCP client is offered, in order, over either transport."""


async def main(settings: Settings, user: str) -> None:
    model = FakeStreamingChatModel(reply=REPLY)
    overrides = Overrides(
        embedder=FakeEmbedder(64, seed=5), chat_model=lambda: model, trait_scorer=False
    )
    await serve_stdio(settings, Principal(user, "admin"), overrides=overrides)


if __name__ == "__main__":
    settings = load_settings()
    run(main(settings, sys.argv[1]), settings.event_loop)
