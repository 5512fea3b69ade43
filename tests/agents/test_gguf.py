"""``PERSONAE_LLM=gguf:/path/to/model.gguf``: any local GGUF file, run in-process like the
embedded model, with prompts and decoding fitted to its size."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents.decoding import CAPABLE, LOCAL_GGUF, SMALL_LOCAL
from agents.errors import LLMUnavailable
from agents.llm import LLMSpec, is_local, make_chat_model, profile_for
from agents.local_llm import LocalChatModel, smollm2_gguf_path


def test_a_gguf_id_names_a_local_file(tmp_path: Path) -> None:
    with pytest.raises(LLMUnavailable, match="no GGUF file at"):
        make_chat_model(LLMSpec(model=f"gguf:{tmp_path / 'missing.gguf'}"))
    small = tmp_path / "small.gguf"
    small.write_bytes(b"GGUF")
    model = make_chat_model(LLMSpec(model=f"gguf:{small}", timeout_s=7.0))
    assert isinstance(model, LocalChatModel)
    assert (model.model_path, model.timeout_s) == (str(small), 7.0)
    assert is_local(f"gguf:{small}") and is_local("local") and not is_local("openai:gpt-4o")


def test_profiles_follow_the_models_size(tmp_path: Path) -> None:
    small = tmp_path / "small.gguf"
    small.write_bytes(b"GGUF")
    large = tmp_path / "large.gguf"
    with large.open("wb") as f:  # sparse: a size, not a gigabyte written
        f.truncate(2 << 30)
    assert profile_for("local") is SMALL_LOCAL
    assert profile_for(f"gguf:{small}") is SMALL_LOCAL
    assert profile_for(f"gguf:{large}") is LOCAL_GGUF
    assert profile_for("openai:gpt-4o-mini") is CAPABLE


@pytest.mark.slow
async def test_a_gguf_file_streams_and_reports_why_it_stopped() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    model = make_chat_model(LLMSpec(model=f"gguf:{smollm2_gguf_path()}", timeout_s=120))
    prompt = [SystemMessage("You are a patient tutor. " * 10), HumanMessage("What is a cell?")]
    texts, reasons = [], []
    async for chunk in model.astream(prompt, max_tokens=6, temperature=0, repeat_penalty=1.1):
        texts.append(str(chunk.content))
        reasons.append(chunk.response_metadata.get("finish_reason"))
    assert "".join(texts).strip()
    assert "length" in reasons, reasons
