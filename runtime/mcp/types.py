"""What the MCP server is made of: who calls (:class:`Caller`, resolved by the transport
for each request), one tool call in progress (:class:`Call`), and a tool's declaration
(:class:`Tool`): its name, what it reads and what it answers, declared once, so the
listing, the validation of arguments and the result's schema cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mcp.server import ServerRequestContext
from mcp_types import Tool as ToolDescription
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, field_validator

from agents.types import TurnEvents
from runtime.infra.auth import Principal
from runtime.usecases.chat import ChatService
from runtime.views import View


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls and what serves them: the chat service every tool goes through, the
    caller's principal (stdio: the local user the command names; HTTP: the bearer
    token's), and, when the transport has rooms, the events of a session's room (an open
    web page of the session sees a reply the MCP client asked for)."""

    chat: ChatService
    principal: Principal
    room: Callable[[uuid.UUID], TurnEvents] | None = None


Resolve = Callable[[ServerRequestContext[Any, Any]], Caller]
"""The transport's part: who a request comes from."""

Report = Callable[[float, float | None, str | None], Awaitable[None]]
"""``notifications/progress`` for the call (nothing is sent when the client asked for
none): progress so far, the total when known, a message."""


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller
    report: Report


class Arguments(BaseModel):
    """A tool's arguments: unknown ones are refused, so a misspelt one is named, and no
    text may hold a NUL character (PostgreSQL cannot store one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


A = TypeVar("A", bound=Arguments)


@dataclass(frozen=True, slots=True)
class Tool(Generic[A]):
    """One tool: ``run`` gets the validated ``arguments`` and answers a ``result`` view,
    sent as structured content and as its JSON text."""

    name: str
    title: str
    description: str
    arguments: type[A]
    result: type[View]
    run: Callable[[Call, A], Awaitable[View]]
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True

    def describe(self) -> ToolDescription:
        return ToolDescription(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.arguments.model_json_schema(),
            output_schema=self.result.model_json_schema(mode="serialization"),
            annotations=ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=self.destructive if not self.read_only else None,
                idempotent_hint=self.idempotent if not self.read_only else None,
                open_world_hint=False,
            ),
        )

    async def call(self, call: Call, raw: dict[str, Any]) -> View:
        """Validate ``raw`` (raises pydantic's ``ValidationError``) and run the tool."""
        return await self.run(call, self.arguments.model_validate(raw))
