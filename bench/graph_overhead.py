"""What LangGraph itself costs per turn: CPU per ``ainvoke`` of graphs shaped like the
turn graph (its state, runtime context and ``Command`` routing) whose nodes do nothing
but return the updates the real nodes return, against calling the same three node
functions directly.

    python bench/graph_overhead.py --runs 2000 --repeats 5

Shapes alternate within each repeat, so a noisy machine slows all of them alike; the
report gives the median over repeats, in microseconds of CPU per turn."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.turn import TurnContext, TurnState
from agents.types import NullEvents
from runtime.infra.loop import run as run_on_loop

Node = Callable[..., Awaitable[Any]]


async def prepare(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
    return {"memories": [], "prompt": None, "timings": {"load_persona_ms": 1}}


async def respond(state: TurnState, runtime: Runtime[TurnContext]) -> Command[Any]:
    update = {"reply": "ok", "status": "complete", "message": None, "timings": {"llm_ms": 1}}
    return Command(update=update, goto="extract_traits")


async def extract_traits(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
    return {"observations": [], "traits": None, "timings": {"extract_ms": 1}}


async def respond_and_extract(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
    return {
        "reply": "ok",
        "status": "complete",
        "message": None,
        "observations": [],
        "traits": None,
        "timings": {"llm_ms": 1, "extract_ms": 1},
    }


async def whole_turn(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
    return {
        "memories": [],
        "prompt": None,
        "reply": "ok",
        "status": "complete",
        "observations": [],
        "timings": {"load_persona_ms": 1, "llm_ms": 1, "extract_ms": 1},
    }


def graph(nodes: list[tuple[str, Node]], routed: frozenset[str] = frozenset()) -> Any:
    """The nodes in a row; a node in ``routed`` goes on by ``Command``, the others by
    plain edges, as in the turn graph."""
    g = StateGraph(TurnState, context_schema=TurnContext)
    for name, fn in nodes:
        g.add_node(name, fn)
    g.add_edge(START, nodes[0][0])
    for (name, _), (after, _) in pairwise(nodes):
        if name not in routed:
            g.add_edge(name, after)
    g.add_edge(nodes[-1][0], END)
    return g.compile()


async def measure(runs: int, repeats: int) -> dict[str, Any]:
    shapes = {
        "3 nodes (the turn graph's shape)": graph(
            [("prepare", prepare), ("respond", respond), ("extract_traits", extract_traits)],
            routed=frozenset({"respond"}),
        ),
        "2 nodes": graph([("prepare", prepare), ("respond", respond_and_extract)]),
        "1 node": graph([("turn", whole_turn)]),
    }
    context = TurnContext(cast(Any, None), NullEvents(), 0.0)  # these nodes use no service
    state: TurnState = {"timings": {}}

    class FakeRuntime:
        def __init__(self, context: TurnContext) -> None:
            self.context = context

    async def direct() -> None:
        rt = FakeRuntime(context)
        await prepare(state, rt)  # type: ignore[arg-type]
        await respond(state, rt)  # type: ignore[arg-type]
        await extract_traits(state, rt)  # type: ignore[arg-type]

    async def timed(invoke: Callable[[], Awaitable[Any]]) -> float:
        for _ in range(min(200, runs)):
            await invoke()
        t0 = time.process_time()
        for _ in range(runs):
            await invoke()
        return (time.process_time() - t0) / runs * 1e6

    samples: dict[str, list[float]] = {name: [] for name in [*shapes, "no graph: the 3 calls"]}
    for _ in range(repeats):
        for name, compiled in shapes.items():
            samples[name].append(
                await timed(lambda c=compiled: c.ainvoke(dict(state), context=context))
            )
        samples["no graph: the 3 calls"].append(await timed(direct))
    return {
        "runs": runs,
        "repeats": repeats,
        "cpu_us_per_turn_median": {k: round(statistics.median(v), 1) for k, v in samples.items()},
        "cpu_us_per_turn_min": {k: round(min(v), 1) for k, v in samples.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="invocations per sample")
    parser.add_argument("--repeats", type=int, default=5, help="samples per shape")
    args = parser.parse_args()
    print(json.dumps(run_on_loop(measure(args.runs, args.repeats)), indent=2))


if __name__ == "__main__":
    main()
