"""Test doubles for the agents layer. The fake chat model lives in ``agents.fake_llm`` so
that load benchmarks can use it too."""

from __future__ import annotations

from agents.fake_llm import FakeStreamingChatModel

__all__ = ["FakeStreamingChatModel"]
