"""What one run of the turn graph carries: its state (LangGraph's channels, written by
the nodes) and its runtime context (the services, where events go, when the turn
began), which every node reads instead of closing over them."""

from __future__ import annotations

import operator
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, TypedDict

from agents.guards import Cut
from agents.prompt import Prompt
from agents.tracker import TraitUpdate
from agents.traits import TraitObservation
from agents.types import AgentServices, TurnEvents, TurnRequest, TurnStatus
from memory.record.facts import Fact
from memory.record.transcripts import Message
from memory.types import ScoredMemory, Vector


class TurnState(TypedDict, total=False):
    request: TurnRequest
    memories: list[ScoredMemory]
    said_before: tuple[str, ...]
    replied_before: uuid.UUID | None
    """The id of this persona's reply just before the user's line (a correction's target)."""
    facts: list[Fact]
    """What is known about the user (current facts), the most relevant first."""
    query_vector: Vector | None
    """The user's line embedded for the search: its memory is stored from it."""
    prompt: Prompt
    reply: str
    status: TurnStatus
    cut: Cut | None
    error_code: str
    error: str
    message: Message
    observations: list[TraitObservation]
    traits: TraitUpdate
    timings: Annotated[dict[str, float], operator.or_]
    late_errors: list[str]
    memories_lost: list[str]


@dataclass(frozen=True, slots=True)
class TurnContext:
    """One run's runtime context: the services its nodes use, where its events go, and
    when the turn began (``started_at``, ``time.perf_counter()``). The persona reached
    the turn already loaded; ``persona_load_ms`` is what loading it cost, reported as
    the turn's ``load_persona_ms`` and counted in its ``turn_ms``."""

    services: AgentServices
    events: TurnEvents
    started_at: float
    persona_load_ms: float = 0.0


def ms_since(t0: float) -> float:
    """Milliseconds from ``t0`` (a ``time.perf_counter()`` reading) to now."""
    return (time.perf_counter() - t0) * 1000


__all__ = ["TurnContext", "TurnState", "ms_since"]
