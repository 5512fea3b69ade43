"""``personae personas import CARD`` and ``personae personas export --format card-v2|card-v3``:
character cards (``personas.cards``) in and out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from personas import Actor, to_definition
from personas.card_store import CardStore
from personas.cards import Spec, export_card, read_card_file
from runtime.cli.args import UsageError, writable_file
from runtime.services import Core

CARD_FORMATS: dict[str, Spec] = {"card-v2": "chara_card_v2", "card-v3": "chara_card_v3"}


async def import_card(core: Core, path: Path) -> int:
    """Create or update the persona of a card file and store the card beside it."""
    definition, card = read_card_file(path)  # read and validated before anything is written
    result = await core.personas.upsert(definition, Actor(name="cli", is_admin=True))
    persona = await core.personas.get(definition.slug)
    await CardStore(core.pool).save(persona.id, card)
    lore = len(card.lore)
    greetings = len(card.greetings)
    print(
        f"{result.slug} from {path} ({card.spec}): {result.outcome}, v{result.version}; "
        f"{greetings} greeting(s), {lore} lore entr{'y' if lore == 1 else 'ies'}"
    )
    return 0


async def export_cards(core: Core, args: argparse.Namespace) -> int:
    """One persona as a character card (JSON): its imported card's fields kept."""
    if len(args.slugs) != 1:
        raise UsageError(f"--format {args.format}: name exactly one persona (a card is one)")
    output = writable_file(args.output) if args.output else None
    persona = await core.personas.get(args.slugs[0])
    card = await CardStore(core.pool, ttl_s=0).get(persona.id)
    doc = export_card(to_definition(persona), card, CARD_FORMATS[args.format])
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {persona.slug} as {doc['spec']} to {output}", file=sys.stderr)
    return 0
