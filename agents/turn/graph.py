"""The turn graph, wired: ``prepare -> respond -> extract_traits``, one compiled
LangGraph ``StateGraph`` for every persona, and :func:`run_turn`, which runs it once.

The nodes are plain functions (``agents.turn.prepare``, ``.respond``, ``.extract``)
that read the services and the transport's events from the run's :class:`TurnContext`.
``respond`` may end a turn early and routes with ``Command``; the other edges are plain.
LangGraph costs about 0.3 ms of CPU per node run (``bench/graph_overhead.py``), so steps
that always run one after the other share a node."""

from __future__ import annotations

import logging
import time
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agents.turn.extract import extract_traits
from agents.turn.prepare import prepare
from agents.turn.respond import respond
from agents.turn.state import TurnContext, TurnState
from agents.types import AgentServices, TurnEvents, TurnRequest, TurnResult

log = logging.getLogger(__name__)

TurnGraph = CompiledStateGraph[Any, Any, Any, Any]


def build_graph() -> TurnGraph:
    """The compiled turn graph; build it once per process. It holds no services: each
    run gets them in its context (:func:`run_turn`)."""
    graph = StateGraph(TurnState, context_schema=TurnContext)
    graph.add_node("prepare", prepare)
    graph.add_node("respond", respond)
    graph.add_node("extract_traits", extract_traits)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "respond")
    graph.add_edge("extract_traits", END)
    return graph.compile(name="persona-turn")


async def run_turn(
    graph: TurnGraph,
    services: AgentServices,
    request: TurnRequest,
    events: TurnEvents,
    *,
    persona_load_ms: float = 0.0,
) -> TurnResult:
    """Run one turn for ``request``'s persona, loaded by the caller in
    ``persona_load_ms``; ``events`` hear of it as it goes (the reply's tokens as the
    model streams them, ``done`` as soon as the reply is stored). Returns after memories
    and traits are written too."""
    # the turn began when its persona began loading
    started_at = time.perf_counter() - persona_load_ms / 1000
    try:
        state = await graph.ainvoke(
            {"request": request, "timings": {}},
            context=TurnContext(services, events, started_at, persona_load_ms),
        )
    except Exception as exc:  # this persona's turn fails; the others go on
        log.error(
            "turn %s for message %s failed: %s: %s",
            request.reply_id,
            request.user_message.id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        await events.failed(None, "internal", "the reply failed; the message is kept")
        return TurnResult(None, None, "failed", error_code="internal", error=type(exc).__name__)
    return TurnResult(
        persona=request.persona,
        message=state.get("message"),
        status=state.get("status", "failed"),
        error_code=state.get("error_code"),
        error=state.get("error"),
        timings=state.get("timings", {}),
        observations=tuple(state.get("observations", ())),
        traits=state.get("traits"),
        late_errors=tuple(state.get("late_errors", ())),
        memories_lost=tuple(state.get("memories_lost", ())),
    )


__all__ = ["TurnGraph", "build_graph", "run_turn"]
