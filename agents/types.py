"""Values and seams of the agents layer: what a turn needs, asks and reports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from langchain_core.language_models import BaseChatModel

from agents.decoding import CAPABLE, ModelProfile
from agents.judges import LLMTraitJudge
from agents.tracker import TraitTracker, TraitUpdate
from agents.traits import PrototypeScorer, TraitObservation
from memory.record.facts import FactStore
from memory.record.transcripts import Message
from memory.service import MemoryService
from personas import Persona, PersonaStore
from personas.card_store import CardStore

TurnStatus = Literal["complete", "incomplete", "failed"]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    memory_k: int = 6
    transcript_lines: int = 12
    budget_tokens: int = 1536
    llm_timeout_s: float = 60.0
    model: ModelProfile = CAPABLE
    """How prompts and decoding fit the model (``SMALL_LOCAL`` for the embedded one)."""


@dataclass(frozen=True, slots=True)
class AgentServices:
    """What the turn graph and the director use; built once by the runtime."""

    personas: PersonaStore
    memory: MemoryService
    tracker: TraitTracker
    chat_model: Callable[[], BaseChatModel]
    llm_name: str
    scorer: PrototypeScorer | None = None
    judge: LLMTraitJudge | None = None
    config: TurnConfig = field(default_factory=TurnConfig)
    cards: CardStore | None = None
    facts: FactStore | None = None
    """What is known about each user (``user_facts``); the prompt shows it."""


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One persona answering one stored user message. ``persona`` comes loaded (the
    director read it to pick who answers): the turn does not read it again."""

    session_id: uuid.UUID
    persona: Persona
    user_id: str
    user_name: str
    user_message: Message
    others: tuple[str, ...] = ()
    mode: str | None = None
    handles: tuple[str, ...] = ()
    """The other personas' slugs: a line starting ``@slug`` is theirs."""
    reply_id: uuid.UUID = field(default_factory=uuid.uuid4)
    channel: str | None = None
    """The channel overlay the reply is written for (``personas.channels``), if any."""


@dataclass(frozen=True, slots=True)
class TurnResult:
    persona: Persona | None
    message: Message | None
    status: TurnStatus
    error_code: str | None = None
    error: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    observations: tuple[TraitObservation, ...] = ()
    traits: TraitUpdate | None = None
    late_errors: tuple[str, ...] = ()
    """Steps after the reply was stored and delivered that failed (the reply stands)."""
    memories_lost: tuple[str, ...] = ()
    """Ids of messages whose memories could not be stored (the vector store was down)."""


class TurnEvents(Protocol):
    """What the transport hears during a turn. ``done`` fires as soon as the reply is
    stored, before memories and traits are written."""

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None: ...

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None: ...

    async def done(
        self, persona: Persona, message: Message, timings: Mapping[str, float]
    ) -> None: ...

    async def failed(self, persona: Persona | None, code: str, message: str) -> None: ...

    async def traits(self, persona: Persona, update: TraitUpdate) -> None: ...


class NullEvents:
    """Events nobody listens to (CLI, tests of the graph alone)."""

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        return None

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        return None

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        return None

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        return None

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        return None
