"""What ``personae memory import`` stores for each line: who spoke, a stable id, and the
lines around it as its context (the store itself is covered by the CLI tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

import pytest

from memory.service import MemoryService, NewMemory
from runtime.cli.memory import ImportLine, import_memories, import_threads
from runtime.settings import load_settings


class Capture:
    """Stands in for the memory service: keeps what would be remembered."""

    def __init__(self) -> None:
        self.items: list[NewMemory] = []

    async def remember(self, items: Sequence[NewMemory]) -> list[Any]:
        self.items.extend(items)
        return list(items)


async def _import(lines: list[dict[str, Any]], **kw: Any) -> list[NewMemory]:
    capture = Capture()
    stored = await import_memories(
        cast(MemoryService, capture),
        persona_id="p1",
        persona_name="Albert Einstein",
        user="uma",
        lines=[ImportLine.model_validate(line) for line in lines],
        **kw,
    )
    assert stored == len(lines)
    return capture.items


CHAT = [
    {"role": "user", "text": "one", "session": "a"},
    {"role": "assistant", "text": "two", "session": "a"},
    {"role": "user", "text": "other session", "session": "b"},
    {"role": "user", "text": "three", "session": "a"},
    {"role": "user", "text": "four", "session": "a"},
    {"speaker": "Albert Einstein", "text": "five", "session": "a"},
]


async def test_each_line_gets_two_lines_either_side_of_its_own_session() -> None:
    items = await _import(CHAT, batch=2)
    by_text = {i.text: i for i in items}
    assert by_text["one"].context == ("Albert Einstein: two", "uma: three")
    assert by_text["three"].context == (
        "uma: one",
        "Albert Einstein: two",
        "uma: four",
        "Albert Einstein: five",
    )
    assert by_text["other session"].context == ()
    assert by_text["five"].speaker_role == "persona" and by_text["two"].speaker_role == "persona"
    assert by_text["one"].spoken == "uma: one"


async def test_ids_are_stable_and_repeats_stay_distinct() -> None:
    lines = [*CHAT, {"role": "user", "text": "four", "session": "a"}]
    first, again = await _import(lines), await _import(lines)
    assert [i.id for i in first] == [i.id for i in again]
    assert len({i.id for i in first}) == len(lines), "the repeated 'four' is its own line"
    moved = await _import([{**CHAT[0], "session": "z"}])
    assert moved[0].id != first[0].id, "the session is part of a line's identity"


async def test_without_context_lines_stand_alone() -> None:
    items = await _import(CHAT, context_lines=0)
    assert all(i.context == () for i in items)


def test_an_import_encodes_on_every_core_unless_the_threads_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PERSONAE_EMBEDDING_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert import_threads(load_settings()) == 3
    monkeypatch.setenv("PERSONAE_EMBEDDING_THREADS", "1")
    assert import_threads(load_settings()) == 1
