"""The turn graph's shape: the state machine docs/architecture.md draws."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agents.graph import build_graph


def test_the_turn_graph_runs_its_nodes_in_order_and_ends_early_only_where_it_may() -> None:
    services: Any = SimpleNamespace(config=None)  # building reads no service
    edges = {(e.source, e.target) for e in build_graph(services).get_graph().edges}
    assert edges == {
        ("__start__", "prepare"),
        ("prepare", "respond"),
        ("prepare", "__end__"),  # unknown or inactive persona
        ("respond", "extract_traits"),
        # the model unavailable, timed out or empty; or a broken stream's partial reply,
        # stored but not mined
        ("respond", "__end__"),
        ("extract_traits", "__end__"),
    }
