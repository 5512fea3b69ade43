"""The MCP server: the tools of :mod:`runtime.mcp.tools` and the card resources of
:mod:`runtime.mcp.resources` on the SDK's low-level :class:`~mcp.server.Server`, for any
transport (``personae mcp`` serves it over stdio, the chat server over streamable HTTP
at ``/mcp``). The transport says who calls (:data:`~runtime.mcp.types.Resolve`);
everything else is the same on both."""

from __future__ import annotations

import json
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    TextContent,
)

from runtime.mcp.errors import failure_text
from runtime.mcp.resources import card_templates, list_cards, read_card
from runtime.mcp.tools import TOOLS
from runtime.mcp.types import Call, Resolve, Tool

log = logging.getLogger(__name__)

NAME = "personae"
INSTRUCTIONS = (
    "Personae runs personas: characters (real figures, tutors, companions) that remember "
    "what their user told them. Find one with list_personas or search_personas. To talk "
    "with it, start_session, then chat with the session_id. To read or change what it "
    "remembers of the user: search_memories, list_memories, remember, forget. To see or "
    "correct what it knows about the user (facts derived from what they said): "
    "list_facts, correct_fact, delete_fact. Each persona's character card is a resource, "
    "personae://personas/{slug}/card."
)
Context = ServerRequestContext[Any, Any]


def build_server(resolve: Resolve, tools: tuple[Tool[Any], ...] = TOOLS) -> Server[Any]:
    """An MCP server of ``tools`` and the card resources, serving the callers ``resolve``
    names. Build one per transport; it holds no state of its own."""
    by_name = {t.name: t for t in tools}
    described = [t.describe() for t in tools]
    schemas = {d.name: d.input_schema for d in described}

    async def list_tools(ctx: Context, params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=described)

    async def call_tool(ctx: Context, params: CallToolRequestParams) -> CallToolResult:
        tool = by_name.get(params.name)
        if tool is None:  # a protocol error, as the specification asks for an unknown tool
            raise MCPError(INVALID_PARAMS, f"unknown tool {params.name!r}; see tools/list")
        try:
            view = await tool.call(
                Call(resolve(ctx), ctx.session.report_progress), params.arguments or {}
            )
        except Exception as exc:  # noqa: BLE001 (every failure is a result the model reads)
            text = failure_text(exc, where=f"MCP tool {tool.name}")
            log.debug("MCP tool %s failed: %s", tool.name, type(exc).__name__)
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        data = view.wire()
        text = json.dumps(data, ensure_ascii=False)
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=data
        )

    async def list_resources(
        ctx: Context, params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        try:
            return await list_cards(resolve(ctx), params.cursor if params else None)
        except MCPError:
            raise
        except Exception as exc:  # noqa: BLE001 (a protocol error with no traceback)
            raise MCPError(INTERNAL_ERROR, failure_text(exc, where="MCP resources/list")) from None

    async def list_templates(
        ctx: Context, params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        return card_templates()

    async def read_resource(ctx: Context, params: ReadResourceRequestParams) -> ReadResourceResult:
        try:
            return await read_card(resolve(ctx), params.uri)
        except MCPError:
            raise
        except Exception as exc:  # noqa: BLE001 (a protocol error with no traceback)
            raise MCPError(INTERNAL_ERROR, failure_text(exc, where="MCP resources/read")) from None

    return Server(
        NAME,
        version=_version(),
        title="Personae",
        instructions=INSTRUCTIONS,
        # the 2026 protocol checks a call's routing headers against the tool's schema
        get_tool_input_schema=lambda name: schemas.get(name),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


def _version() -> str:
    try:
        return version("personae")
    except PackageNotFoundError:
        return ""
