"""The event loop a process runs on (PERSONAE_EVENT_LOOP)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from runtime import loop


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_runs_on_uvloop_when_it_is_installed() -> None:
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert loop.run(_loop_type(), "auto") == expected


def test_asyncio_is_asyncios_own_loop() -> None:
    assert loop.run(_loop_type(), "asyncio") == "asyncio"


def test_asking_for_uvloop_without_it_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        loop.loop_factory("uvloop")
    assert loop.loop_factory("auto") is None
