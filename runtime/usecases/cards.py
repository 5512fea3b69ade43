"""A persona as a character card (Character Card V2 or V3), for an interface that hands
cards out: its imported card's fields kept, the persona's own where they changed since
(:func:`personas.cards.export_card`)."""

from __future__ import annotations

from typing import Any

from personas import to_definition
from personas.card_store import CardStore
from personas.cards import Spec, export_card
from runtime.infra.auth import Principal
from runtime.services import Services

PROMPT_FIELDS = ("system_prompt", "post_history_instructions")
"""Card fields that are instructions to the model: shown to editors and admins only,
as persona views never show a persona's system prompt to users."""


async def persona_card(
    services: Services, principal: Principal, key: str, spec: Spec = "chara_card_v2"
) -> dict[str, Any]:
    """The card of the live persona ``key`` (slug or id). An editor or admin gets the
    whole card, the persona's definition under ``extensions.personae`` included (importing
    it restores the persona); anyone else gets it without the prompt's fields and the
    definition."""
    persona = await services.personas.get(key)
    cards = services.agents.cards or CardStore(services.pool)
    doc = export_card(to_definition(persona), await cards.get(persona.id), spec)
    if principal.is_editor:
        return doc
    data = dict(doc["data"])
    for name in PROMPT_FIELDS:
        if name in data:
            data[name] = ""
    extensions = {k: v for k, v in dict(data.get("extensions") or {}).items() if k != "personae"}
    data["extensions"] = extensions
    return {**doc, "data": data}
