"""The event loop a process runs on (PERSONAE_EVENT_LOOP)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

from runtime.infra import loop


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


def test_tune_collector_freezes_what_exists_and_makes_young_collections_rarer() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(10)]  # alive now: frozen with the rest
    try:
        frozen = loop.tune_collector()
        assert frozen == gc.get_freeze_count() > len(kept)
        assert gc.get_threshold() == loop.COLLECTOR_THRESHOLDS
        assert loop.COLLECTOR_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
