"""Fixtures of the memory tests: a seeded fake embedder and both index backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memory import FakeEmbedder, VectorIndex
from tests.memory.helpers import BACKENDS, DIM, open_index


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder(DIM, seed=7)


@pytest.fixture(params=BACKENDS)
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    """A fresh, open index: Qdrant Edge in a temporary folder, qdrant-client's in-memory
    emulation of a server, or Edge shared over a Unix socket (as worker processes use
    it); every behavioural test runs on all three."""
    async with open_index(request.param, tmp_path) as opened:
        yield opened
