"""Personae's data is its owner's alone, whatever the umask: the home and the folders
made on the way to it are 0700, an existing home others could list is narrowed, and
the embedded vector store's folder is 0700 wherever it is."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import EdgeMemoryIndex
from runtime.infra.private import private_folder
from runtime.infra.server_lock import holding_home
from runtime.settings import load_settings


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_and_its_new_parents_are_private(
    tmp_path: Path, open_umask: None, no_personae_env: None
) -> None:
    home = tmp_path / "a" / "b" / "home"
    with holding_home(load_settings(home=home)):
        assert [_mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", home)] == [0o700] * 3
    for was, now in ((0o755, 0o711), (0o770, 0o710), (0o711, 0o711), (0o700, 0o700)):
        old = tmp_path / f"old-home-{was:o}"
        old.mkdir()
        os.chmod(old, was)
        assert _mode(private_folder(old)) == now, f"{was:o}: others may not list or write"


async def test_the_vector_stores_folder_is_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "qdrant"
    async with EdgeMemoryIndex(path, dim=8):
        pass
    assert _mode(path) == 0o700
    os.chmod(path, 0o755)  # as an earlier version left it
    async with EdgeMemoryIndex(path, dim=8):
        pass
    assert _mode(path) == 0o700
