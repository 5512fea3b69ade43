"""How a long-running Personae process runs: on uvloop when installed (the default
``PERSONAE_EVENT_LOOP=auto``), else asyncio's own loop, and with what start-up made kept
out of the garbage collector's way."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopName = Literal["auto", "uvloop", "asyncio"]


def loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``None`` means asyncio's default loop."""
    if name == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if name == "uvloop":
            raise RuntimeError("PERSONAE_EVENT_LOOP=uvloop, but uvloop is not installed")
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], name: LoopName = "auto") -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


# CPython collects its youngest generation after every 700 net allocations of container
# objects. A loaded server makes thousands per turn, and the objects of the turns in
# flight (a hundred at a time under load) outlive several such collections, each of
# which walks them again before they are promoted and, later, walked again in the older
# generations. Rarer young collections cost a few MB of not-yet-collected garbage and
# took a saturated worker's collector from 9% of its CPU to under 0.5% (docs/performance.md).
COLLECTOR_THRESHOLDS = (20_000, 20, 20)


def tune_collector() -> int:
    """Ready the garbage collector for serving; call once a server has opened its
    services. Every object alive now is moved out of the collector's view
    (``gc.freeze``): models, graph, modules and caches live as long as the process, and
    full collections that walked them all paused a loaded server for 100-160 ms every
    few seconds. Young collections are made rarer (``COLLECTOR_THRESHOLDS``). Returns
    how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    return gc.get_freeze_count()
