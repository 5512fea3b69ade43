"""Client payloads, validated at the edge; every field is checked and unknown ones refused."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from memory import check_name

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Policy = Literal["mention", "round_robin", "all", "selector", "autonomous"]
Kind = Literal["turn", "fact", "summary", "reflection"]


def find_nul(value: object, path: str = "payload", depth: int = 0) -> str | None:
    """Where a NUL character hides in ``value`` (PostgreSQL text cannot hold one), if anywhere."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if depth > 32:
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = find_nul(k, path, depth + 1) or find_nul(v, f"{path}.{k}", depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = find_nul(v, f"{path}.{i}", depth + 1)
            if found:
                return found
    return None


def display_name(value: object) -> str | None:
    """``auth.name`` checked: None when absent or blank (the default name is used), else
    a speaker's name as :func:`memory.check_name` takes it. Raises ``ValueError``
    (``TypeError``: not a string) naming what is wrong."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("auth.name: expected a string")
    if not value.strip():
        return None
    return check_name(value, "auth.name")


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class SessionStart(Payload):
    personas: list[Key] = Field(default_factory=list, max_length=8)
    session_id: uuid.UUID | None = None
    policy: Policy | None = None
    title: str = Field(default="", max_length=200)
    rounds: int | None = Field(default=None, ge=0, le=50)


class SessionRef(Payload):
    session_id: uuid.UUID


class SessionHistory(Payload):
    session_id: uuid.UUID
    before: int | None = Field(default=None, ge=1, le=2**62)
    limit: int = Field(default=50, ge=1, le=200)


class MessageRetry(Payload):
    session_id: uuid.UUID
    message_id: uuid.UUID


class MessageSend(Payload):
    session_id: uuid.UUID
    text: str = Field(min_length=1)
    client_msg_id: Key
    to: list[Key] = Field(default_factory=list, max_length=8)
    mode: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")] | None = None
    channel: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")] | None = None


class Typing(Payload):
    session_id: uuid.UUID
    is_typing: bool


class MemoryList(Payload):
    persona: Key
    session_id: uuid.UUID | None = None
    kind: Kind | None = None
    user: Key | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None


class MemorySearch(Payload):
    persona: Key
    query: str = Field(min_length=1, max_length=2_000)
    k: int = Field(default=10, ge=1, le=50)
    session_id: uuid.UUID | None = None
    user: Key | None = None


class MemoryRef(Payload):
    persona: Key
    memory_id: uuid.UUID
    user: Key | None = None


class MemoryPin(MemoryRef):
    pinned: bool


class FactsOf(Payload):
    persona: Key
    user: Key | None = None


class FactRef(FactsOf):
    fact_id: uuid.UUID


class FactCorrection(FactRef):
    text: str = Field(min_length=1, max_length=500)


class PersonaTraits(Payload):
    persona: Key
    session_id: uuid.UUID | None = None


class LegacyChat(BaseModel):
    """The legacy ``chat_message``: camelCase, extra fields tolerated as old clients send them."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    message: str = Field(min_length=1)
    persona_id: Key = Field(alias="personaId")
