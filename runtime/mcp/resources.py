"""The MCP resources: each active persona's character card (Character Card V2 JSON),
at ``personae://personas/{slug}/card``. Listed a page of personas at a time, and as a
template for any persona by slug or id."""

from __future__ import annotations

import json
import re

from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextResourceContents,
)

from personas import PersonaNotFound
from runtime.mcp.types import Caller
from runtime.usecases.cards import persona_card

CARD_TEMPLATE = "personae://personas/{persona}/card"
_CARD_URI = re.compile(r"personae://personas/(?P<key>[^/?#]{1,100})/card")
_PAGE = 100
_JSON = "application/json"


def card_uri(slug: str) -> str:
    return CARD_TEMPLATE.format(persona=slug)


async def list_cards(caller: Caller, cursor: str | None) -> ListResourcesResult:
    """A page of the active personas' cards, by name; ``cursor`` is the next offset."""
    offset = int(cursor) if cursor and cursor.isdigit() and len(cursor) < 10 else 0
    if cursor and not offset:
        raise MCPError(INVALID_PARAMS, f"cursor: not one this server gave ({cursor[:40]!r})")
    page = await caller.chat.services.personas.list(offset=offset, limit=_PAGE, active=True)
    following = offset + len(page.items)
    return ListResourcesResult(
        resources=[
            Resource(
                uri=card_uri(p.slug),
                name=f"{p.slug}-card",
                title=f"{p.name}: character card",
                description=p.role or p.description[:200],
                mime_type=_JSON,
            )
            for p in page.items
        ],
        next_cursor=str(following) if page.items and following < page.total else None,
    )


def card_templates() -> ListResourceTemplatesResult:
    return ListResourceTemplatesResult(
        resource_templates=[
            ResourceTemplate(
                uri_template=CARD_TEMPLATE,
                name="persona-card",
                title="A persona's character card",
                description="Character Card V2 (JSON) of a persona, by slug or id: its "
                "description, personality, scenario, greetings and examples",
                mime_type=_JSON,
            )
        ]
    )


async def read_card(caller: Caller, uri: str) -> ReadResourceResult:
    """The card a ``personae://personas/{persona}/card`` URI names."""
    found = _CARD_URI.fullmatch(uri)
    if found is None:
        raise MCPError(INVALID_PARAMS, f"no such resource {uri[:200]!r}; see {CARD_TEMPLATE}")
    try:
        card = await persona_card(caller.chat.services, caller.principal, found["key"])
    except PersonaNotFound as exc:
        raise MCPError(INVALID_PARAMS, str(exc), data={"uri": uri}) from None
    return ReadResourceResult(
        contents=[
            TextResourceContents(
                uri=uri, mime_type=_JSON, text=json.dumps(card, indent=2, ensure_ascii=False)
            )
        ]
    )
