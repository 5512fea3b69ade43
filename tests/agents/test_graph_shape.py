"""The turn graph's shape: the state machine docs/architecture.md draws."""

from __future__ import annotations

from agents.turn import build_graph


def test_the_turn_graph_runs_its_nodes_in_order_and_ends_early_only_where_it_may() -> None:
    edges = {(e.source, e.target) for e in build_graph().get_graph().edges}
    assert edges == {
        ("__start__", "prepare"),
        ("prepare", "respond"),  # the persona comes loaded: prepare cannot fail a turn
        ("respond", "extract_traits"),
        # the model unavailable, timed out or empty; or a broken stream's partial reply,
        # stored but not mined
        ("respond", "__end__"),
        ("extract_traits", "__end__"),
    }
