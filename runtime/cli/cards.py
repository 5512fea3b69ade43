"""``personae personas import CARD`` and ``personae personas export --format card-v2|card-v3``:
character cards (``personas.cards``) in and out, as JSON or, for an output file named
``.png``, as a PNG picture carrying the card (``personas.card_png``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from personas import Actor, Persona, to_definition
from personas.card_png import card_picture, card_png, generated_picture
from personas.card_store import CardStore
from personas.cards import MAX_FILE_BYTES, CardError, Spec, export_card, read_card_file
from runtime.cli.args import UsageError, writable_file
from runtime.services import Core

CARD_FORMATS: dict[str, Spec] = {"card-v2": "chara_card_v2", "card-v3": "chara_card_v3"}


async def import_card(core: Core, path: Path, *, force: bool = False) -> int:
    """Create or update the persona of a card file and store the card beside it (with
    the picture of a PNG card); a persona changed since its import is kept, card and
    all, unless ``force``."""
    definition, card = read_card_file(path)  # read and validated before anything is written
    picture = card_picture(path.read_bytes(), str(path)) if path.suffix.lower() == ".png" else None
    result = await core.personas.upsert(definition, Actor(name="cli", is_admin=True), force=force)
    if result.outcome == "kept":
        print(
            f"{result.slug} from {path} ({card.spec}): kept, v{result.version}, as changed "
            "since its import; --force overwrites it with the card"
        )
        return 0
    persona = await core.personas.get(definition.slug)
    await CardStore(core.pool).save(persona.id, card, picture)
    lore = len(card.lore)
    greetings = len(card.greetings)
    print(
        f"{result.slug} from {path} ({card.spec}): {result.outcome}, v{result.version}; "
        f"{greetings} greeting(s), {lore} lore entr{'y' if lore == 1 else 'ies'}"
    )
    return 0


def check_export(args: argparse.Namespace) -> bytes | None:
    """Refuse a card export's bad arguments before any work is done; the ``--image``
    picture, read."""
    if len(args.slugs) != 1:
        raise UsageError(f"--format {args.format}: name exactly one persona (a card is one)")
    if args.output is not None:
        writable_file(args.output)
    if args.image is None:
        return None
    if args.output is None or args.output.suffix.lower() != ".png":
        raise UsageError("--image: only for a card written as PNG (-o FILE.png)")
    return _image(args.image)


async def export_cards(core: Core, args: argparse.Namespace, image: bytes | None) -> int:
    """One persona as a character card, its imported card's fields kept: JSON, or a PNG
    when the output file is named ``.png`` (on ``image``, the persona's picture, or a
    generated one). The arguments passed :func:`check_export`."""
    output: Path | None = args.output
    as_png = output is not None and output.suffix.lower() == ".png"
    persona = await core.personas.get(args.slugs[0])
    store = CardStore(core.pool, ttl_s=0)
    card = await store.get(persona.id)
    spec = CARD_FORMATS[args.format]
    doc = export_card(to_definition(persona), card, spec)
    if output is None:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not as_png:
        output.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {persona.slug} as {spec} to {output}", file=sys.stderr)
        return 0
    picture = image or await store.picture(persona.id) or _generated(persona)
    cards = {"chara": doc}
    if spec == "chara_card_v3":  # V2 readers find the card in 'chara', V3 ones in 'ccv3'
        cards = {"chara": export_card(to_definition(persona), card, "chara_card_v2"), "ccv3": doc}
    output.write_bytes(card_png(picture, cards))
    print(f"wrote {persona.slug} as {spec} in a PNG to {output}", file=sys.stderr)
    return 0


def _image(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"--image {path}: larger than {MAX_FILE_BYTES // 1024**2} MiB")
        return card_picture(path.read_bytes(), str(path))
    except OSError as exc:
        raise UsageError(f"--image {path}: cannot read: {exc.strerror or exc}") from None
    except CardError as exc:
        raise UsageError(f"--image {exc}") from None


def _generated(persona: Persona) -> bytes:
    return generated_picture(persona.name, str(persona.id))
