"""The chat page says, once and briefly, that the embedded model is a small demo and
how to run a capable one; on any other model it says nothing of the kind."""

from __future__ import annotations

from typing import Any

from socket_server.app import chat_page


async def test_the_page_notes_the_embedded_demo_model_only_when_it_runs() -> None:
    request: Any = None
    embedded = (await chat_page(embedded=True)(request)).text or ""
    assert 'data-testid="demo-note">' in embedded
    assert "small" in embedded and "PERSONAE_LLM=gguf:" in embedded
    assert embedded.count('data-testid="demo-note"') == 1
    other = (await chat_page(embedded=False)(request)).text or ""
    assert 'data-testid="demo-note" hidden' in other
