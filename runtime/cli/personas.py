"""``personae personas import|export|list|show|search``: the persona library from the
command line (the studio's commands on the same group are in :mod:`runtime.cli.studio`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from personas import Actor, Persona, to_definition
from personas.cards import looks_like_card_file
from personas.definitions import load_path, shipped_library
from runtime.cli import cards as cli_cards
from runtime.cli.args import UsageError, non_negative_int, positive_int, writable_file
from runtime.cli.studio import add_studio_commands
from runtime.services import Core, open_core
from runtime.settings import Settings


def add_commands(sub: Any) -> None:
    """Register ``personae personas ...`` on the top-level sub-command parser."""
    personas = sub.add_parser("personas", help="manage personas").add_subparsers(title="actions")
    imp = personas.add_parser(
        "import",
        help="create or update personas from YAML/JSON files or a character card",
    )
    imp.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="a definitions file or folder (default: the shipped library), or a character "
        "card: .json, .png or .charx (chara_card_v2 / chara_card_v3)",
    )
    imp.add_argument(
        "--force",
        action="store_true",
        help="also overwrite personas changed since they were imported (kept otherwise)",
    )
    imp.set_defaults(run=_import)
    exp = personas.add_parser("export", help="write personas as a definitions file")
    exp.add_argument("slugs", nargs="*", help="only these personas (default: all)")
    exp.add_argument(
        "-o",
        "--output",
        type=Path,
        help="file to write (default: stdout); a card named FILE.png is written as a PNG",
    )
    exp.add_argument(
        "--format",
        choices=("yaml", "json", *cli_cards.CARD_FORMATS),
        default="yaml",
        help="a definitions file (yaml, json) or one persona as a character card (card-v2, "
        "card-v3)",
    )
    exp.add_argument(
        "--image",
        type=Path,
        help="a card as PNG: the picture to carry it (default: the picture of the PNG card "
        "the persona came from, else one generated from its initials)",
    )
    exp.set_defaults(run=_export)
    lst = personas.add_parser("list", help="list personas")
    lst.add_argument("--domain", help="only personas with this domain")
    lst.add_argument(
        "--type",
        dest="persona_type",
        choices=("historical", "fictional", "synthetic"),
        help="only personas of this type",
    )
    lst.add_argument("--inactive", action="store_true", help="only inactive personas")
    lst.add_argument("--limit", type=positive_int, default=100, help="at most this many")
    lst.add_argument("--offset", type=non_negative_int, default=0, help="skip this many first")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(run=_list)
    show = personas.add_parser("show", help="show one persona with its effective traits")
    show.add_argument("key", help="slug or id")
    show.add_argument("--json", action="store_true", help="print the definition as JSON")
    show.set_defaults(run=_show)
    search = personas.add_parser("search", help="full-text search")
    search.add_argument("query", help="words to look for")
    search.add_argument("--limit", type=positive_int, default=10, help="at most this many")
    search.set_defaults(run=_search)
    add_studio_commands(personas)


def _with_core(
    fn: Callable[[Core, argparse.Namespace], Awaitable[int]],
) -> Callable[[Settings, argparse.Namespace], Awaitable[int]]:
    async def run(settings: Settings, args: argparse.Namespace) -> int:
        async with open_core(settings) as core:
            return await fn(core, args)

    return run


@_with_core
async def _import(services: Core, args: argparse.Namespace) -> int:
    if args.path is not None and looks_like_card_file(args.path):
        return await cli_cards.import_card(services, args.path, force=args.force)
    path = args.path or shipped_library()
    definitions = load_path(path)  # all files validated before anything is written
    counts = {"created": 0, "updated": 0, "unchanged": 0, "kept": 0}
    kept: list[str] = []
    actor = Actor(name="cli", is_admin=True)
    with tqdm(definitions, desc="importing", unit="persona", file=sys.stderr, disable=None) as bar:
        for definition in bar:
            result = await services.personas.upsert(definition, actor, force=args.force)
            counts[result.outcome] += 1
            if result.outcome == "kept":
                kept.append(f"{result.slug} (v{result.version})")
            bar.set_postfix_str(definition.slug)
    print(
        f"{len(definitions)} persona(s) from {path}: {counts['created']} created, "
        f"{counts['updated']} updated, {counts['unchanged']} unchanged"
        + (f", {counts['kept']} kept" if kept else "")
    )
    if kept:
        print(
            f"kept as changed since their import: {', '.join(kept)}; "
            "--force overwrites them with the imported definitions"
        )
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    if args.format in cli_cards.CARD_FORMATS:
        image = cli_cards.check_export(args)  # before anything is opened
        async with open_core(settings) as core:
            return await cli_cards.export_cards(core, args, image)
    if args.output:
        writable_file(args.output)
        if args.output.suffix.lower() in (".png", ".charx"):
            raise UsageError(
                f"cannot write {args.output}: a definitions file is YAML or JSON; a card "
                "as PNG is --format card-v2 or card-v3"
            )
    if args.image is not None:
        raise UsageError("--image: only for a card written as PNG (--format card-v2|card-v3)")
    async with open_core(settings) as core:
        return await _export_definitions(core, args)


async def _export_definitions(services: Core, args: argparse.Namespace) -> int:
    if args.slugs:
        personas = [await services.personas.get(s) for s in args.slugs]
    else:
        personas = await _all(services)
    doc = {"personas": [to_definition(p).canonical() for p in personas]}
    if args.format == "json":
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(personas)} persona(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _all(services: Core) -> list[Persona]:
    out: list[Persona] = []
    offset = 0
    while True:
        page = await services.personas.list(offset=offset, limit=200)
        out.extend(page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return out


@_with_core
async def _list(services: Core, args: argparse.Namespace) -> int:
    page = await services.personas.list(
        offset=args.offset,
        limit=args.limit,
        domain=args.domain,
        persona_type=args.persona_type,
        active=False if args.inactive else None,
    )
    if args.json:
        print(json.dumps([_summary(p) for p in page.items], indent=2))
        return 0
    for p in page.items:
        flags = ("" if p.active else " [inactive]") + (" [protected]" if p.protected else "")
        print(f"{p.slug:32} {p.name:30} {p.persona_type:10} v{p.version}{flags}")
    print(f"-- {len(page.items)} of {page.total}", file=sys.stderr)
    return 0


@_with_core
async def _show(services: Core, args: argparse.Namespace) -> int:
    p = await services.personas.get(args.key)
    if args.json:
        data = to_definition(p).canonical()
        data |= {"id": str(p.id), "version": p.version}
        data["effective_traits"] = [
            {"name": t.name, "type": t.type, "value": t.value, "inherited": t.inherited}
            for t in p.traits
        ]
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(f"{p.name} ({p.slug}) — {p.role}  v{p.version}  id {p.id}")
    print(f"type {p.persona_type}; domains: {', '.join(p.domains)}")
    print(p.description)
    print("traits:")
    for t in p.traits:
        origin = " (inherited)" if t.inherited else ""
        print(f"  {t.name:20} {t.type:10} {t.value:.2f}{origin}")
    print("beliefs:")
    for b in p.beliefs:
        print(f"  - {b.text}" + (f"  [{b.source}]" if b.source else ""))
    print("modes: " + ", ".join(m.mode + ("" if m.enabled else " (off)") for m in p.modes))
    s = p.style
    print(
        f"style: humour {s.humour_usage:.2f}, {s.emotional_style}, {s.language_style}, "
        f"default mode {s.default_mode}, temperature {s.temperature}"
    )
    return 0


@_with_core
async def _search(services: Core, args: argparse.Namespace) -> int:
    hits = await services.personas.search(args.query, limit=args.limit)
    for h in hits:
        print(f"{h.rank:6.3f}  {h.persona.slug:32} {h.persona.name}")
    if not hits:
        print(f"no persona matches {args.query!r}", file=sys.stderr)
    return 0


def _summary(p: Persona) -> dict[str, object]:
    return {
        "id": str(p.id),
        "slug": p.slug,
        "name": p.name,
        "persona_type": p.persona_type,
        "domains": list(p.domains),
        "version": p.version,
        "active": p.active,
        "protected": p.protected,
    }
