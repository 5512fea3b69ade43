"""What the node tests share: a recorder of events, and a turn (persona, session, the
user's stored line, a ``TurnRequest``) whose nodes run one at a time with a ``Runtime``
built here, so a test sees what each one returns and reports."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from langgraph.runtime import Runtime

from agents.fake_llm import FakeStreamingChatModel
from agents.tracker import TraitUpdate
from agents.turn import TurnContext, TurnState
from agents.turn.prepare import prepare
from agents.types import AgentServices, TurnRequest
from memory.record.transcripts import Message
from personas import Persona

QUESTION = "What is space?"


class Recorder:
    """The events a node reports, in order: ``(kind, detail)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.done_timings: Mapping[str, float] = {}

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        self.events.append(("started", f"{persona.slug} {reply_id}"))

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        self.events.append(("token", delta))

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        self.done_timings = timings
        self.events.append(("done", message.text))

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        self.events.append(("failed", code))

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        self.events.append(("traits", persona.slug))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def streamed(self) -> str:
        return "".join(text for kind, text in self.events if kind == "token")


@dataclasses.dataclass
class Turn:
    services: Any  # runtime's Services: the stores, for setting up and checking
    model: FakeStreamingChatModel
    request: TurnRequest
    events: Recorder
    agents: AgentServices

    def runtime(self, *, persona_load_ms: float = 0.0) -> Runtime[TurnContext]:
        """A run's runtime as LangGraph hands it to a node."""
        context = TurnContext(self.agents, self.events, time.perf_counter(), persona_load_ms)
        return Runtime(context=context)

    def configure(self, **config: Any) -> None:
        """Change the turn's ``TurnConfig`` (``llm_timeout_s``...)."""
        self.agents = dataclasses.replace(
            self.agents, config=dataclasses.replace(self.agents.config, **config)
        )

    async def prepared(self) -> TurnState:
        """The state ``respond`` starts from: the request and what ``prepare`` added."""
        update = await prepare({"request": self.request, "timings": {}}, self.runtime())
        return {"request": self.request, **update}

    async def stored(self) -> list[Message]:
        return (await self.services.memory.transcripts.history(self.request.session_id)).items


OpenTurn = Callable[[FakeStreamingChatModel], AbstractAsyncContextManager[Turn]]
