"""The MCP server (Model Context Protocol): tools and resources that give an assistant's
client (Claude Desktop, Cursor, any MCP client) the personas and what they remember of
its user. Defined once here; ``personae mcp`` serves it over stdio
(:mod:`runtime.cli.mcp`) and the chat server over streamable HTTP at ``/mcp``
(:mod:`socket_server.mcp_http`)."""

from runtime.mcp.server import build_server
from runtime.mcp.tools import TOOLS
from runtime.mcp.types import Arguments, Call, Caller, Resolve, Tool

__all__ = ["TOOLS", "Arguments", "Call", "Caller", "Resolve", "Tool", "build_server"]
