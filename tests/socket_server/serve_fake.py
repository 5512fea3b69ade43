"""A server process on the fake model, for multi-node tests and load benchmarks:
``python -m tests.socket_server.serve_fake`` with the usual PERSONAE_* settings.

``FAKE_TOKENS`` / ``FAKE_TOKEN_DELAY_S`` shape the fake replies; ``FAKE_VARIED_REPLY=1``
makes each reply quote the start of the user's message (so no two replies are alike, as
with a real model). ``FAKE_EMBEDDER=1`` (the default, for tests) runs the fake embedder
without the trait scorer; ``FAKE_EMBEDDER=0`` the real embedder and trait scorer the
settings choose. With ``EMBEDDER_STATS_DIR`` set, each process that served writes what
its embedder did there as JSON when it stops."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from langchain_core.messages import BaseMessage

from agents.fake_llm import FakeStreamingChatModel
from memory import BatchedEmbedder, Embedder, FakeEmbedder
from runtime.infra.loop import run
from runtime.services import Overrides, embedder_for
from runtime.settings import load_settings
from socket_server.app import run_server

REPLY = "Thank you for telling me; I will remember that about you."


def varied_reply(messages: Sequence[BaseMessage]) -> str:
    said = str(messages[-1].content).split() if messages else []
    return f"You said {' '.join(said[:8])} Thank you, I will remember that about you."


async def main() -> None:
    settings = load_settings()
    varied = os.environ.get("FAKE_VARIED_REPLY") == "1"
    model = FakeStreamingChatModel(
        reply=varied_reply if varied else REPLY,
        token_count=int(os.environ.get("FAKE_TOKENS", "20")),
        token_delay_s=float(os.environ.get("FAKE_TOKEN_DELAY_S", "0")),
    )
    fake = os.environ.get("FAKE_EMBEDDER", "1") == "1"
    embedder: Embedder = FakeEmbedder(64, seed=5) if fake else embedder_for(settings)
    overrides = Overrides(embedder=embedder, chat_model=lambda: model, trait_scorer=not fake)
    # with PERSONAE_WORKERS > 1 this process supervises copies of itself
    await run_server(
        settings,
        overrides=overrides,
        worker_command=[sys.executable, "-m", "tests.socket_server.serve_fake"],
    )
    stats_dir = os.environ.get("EMBEDDER_STATS_DIR")
    served = settings.workers == 1 or settings.worker is not None
    if stats_dir and served:
        report: dict[str, object] = {"pid": os.getpid(), "dim": embedder.dim}
        if isinstance(embedder, BatchedEmbedder):
            report |= {"backend": embedder.label, **embedder.stats.as_dict()}
        elif isinstance(embedder, FakeEmbedder):
            report |= {"backend": "fake", "calls": embedder.calls}
        Path(stats_dir, f"{os.getpid()}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    run(main(), load_settings().event_loop)
