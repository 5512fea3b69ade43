"""One persona's chat turn as a LangGraph graph: ``state`` (what a run carries),
``prepare``, ``respond`` and ``extract`` (the nodes), ``graph`` (the wiring and
:func:`run_turn`)."""

from __future__ import annotations

from agents.turn.graph import TurnGraph, build_graph, run_turn
from agents.turn.prepare import MEMORY_UNAVAILABLE, prompt_for
from agents.turn.state import TurnContext, TurnState

__all__ = [
    "MEMORY_UNAVAILABLE",
    "TurnContext",
    "TurnGraph",
    "TurnState",
    "build_graph",
    "prompt_for",
    "run_turn",
]
