"""A server process on the fake model and fake embedder, for multi-node tests and load
benchmarks: ``python -m tests.socket_server.serve_fake`` with the usual PERSONAE_*
settings; ``FAKE_TOKENS`` / ``FAKE_TOKEN_DELAY_S`` shape the fake replies."""

from __future__ import annotations

import os
import sys

from agents.fake_llm import FakeStreamingChatModel
from memory import FakeEmbedder
from runtime.loop import run
from runtime.services import Overrides
from runtime.settings import load_settings
from socket_server.app import run_server


async def main() -> None:
    settings = load_settings()
    model = FakeStreamingChatModel(
        reply="Thank you for telling me; I will remember that about you.",
        token_count=int(os.environ.get("FAKE_TOKENS", "20")),
        token_delay_s=float(os.environ.get("FAKE_TOKEN_DELAY_S", "0")),
    )
    overrides = Overrides(
        embedder=FakeEmbedder(64, seed=5), chat_model=lambda: model, trait_scorer=False
    )
    # with PERSONAE_WORKERS > 1 this process supervises copies of itself
    await run_server(
        settings,
        overrides=overrides,
        worker_command=[sys.executable, "-m", "tests.socket_server.serve_fake"],
    )


if __name__ == "__main__":
    run(main(), load_settings().event_loop)
