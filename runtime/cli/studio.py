"""``personae personas create|edit|delete|versions|diff|restore|generate|channels|template``:
the persona studio from the command line, as an admin (the CLI runs beside the database).

Bad input (a bad file, field or value) prints one line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agents.traits.fingerprint import FingerprintError
from personas import Actor, InvalidPersonaChange
from personas.channels import BUILTIN, effective_channels
from personas.definitions import ChannelDef, PersonaPatch, load_file, read_bounded
from personas.errors import DefinitionError
from personas.templates import TEMPLATES
from runtime.errors import RuntimeLayerError
from runtime.services import Core, open_core
from runtime.settings import Settings
from runtime.usecases import studio
from runtime.views import PersonaDiff, VersionView

CLI_ACTOR = Actor(name="cli", is_admin=True)
Command = Callable[[Core, argparse.Namespace], Awaitable[int]]


class StudioInputError(RuntimeLayerError):
    """A command's input is invalid; the message says which and why."""


def add_studio_commands(personas: Any) -> None:
    """Register the studio's commands on the ``personas`` sub-command parser."""
    create = personas.add_parser("create", help="create a persona from a definition file")
    create.add_argument("file", type=Path, help="YAML or JSON holding one persona")
    create.set_defaults(run=_core(_create))

    edit = personas.add_parser("edit", help="change parts of a persona as a new version")
    edit.add_argument("key", help="slug or id")
    edit.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="e.g. name='Ada', active=false, style.temperature=0.8 (repeatable)",
    )
    edit.add_argument(
        "--belief",
        action="append",
        default=[],
        metavar="TEXT[|SOURCE]",
        help="replace the beliefs with these (repeatable)",
    )
    edit.add_argument("--file", type=Path, help="a YAML/JSON mapping of fields to replace")
    edit.add_argument("--reason", default="", help="recorded with the version")
    edit.set_defaults(run=_core(_edit))

    delete = personas.add_parser("delete", help="soft-delete a persona")
    delete.add_argument("key", help="slug or id of the persona")
    delete.set_defaults(run=_core(_delete))

    versions = personas.add_parser("versions", help="list a persona's versions")
    versions.add_argument("key", help="slug or id of the persona")
    versions.add_argument("--json", action="store_true", help="print JSON")
    versions.set_defaults(run=_core(_versions))

    diff = personas.add_parser("diff", help="what changed between two versions")
    diff.add_argument("key", help="slug or id of the persona")
    diff.add_argument("old", type=int, help="a version")
    diff.add_argument("new", type=int, nargs="?", help="a later version (default: current)")
    diff.add_argument("--json", action="store_true", help="print JSON")
    diff.set_defaults(run=_core(_diff))

    restore = personas.add_parser("restore", help="make an old version current again")
    restore.add_argument("key", help="slug or id of the persona")
    restore.add_argument("version", type=int, help="the version to make current")
    restore.set_defaults(run=_core(_restore))

    gen = personas.add_parser("generate", help="draft a persona from writing samples")
    gen.add_argument(
        "files",
        nargs="+",
        type=Path,
        help="plain text (one sample a file) or .jsonl (one sample a line)",
    )
    gen.add_argument("--name", required=True, help="the draft persona's name")
    gen.add_argument("--channel", help="the channel the samples were written for")
    gen.add_argument("--json", action="store_true", help="print the fingerprint as JSON")
    gen.set_defaults(run=_core(_generate))

    chans = personas.add_parser("channels", help="list, set or remove channel overlays")
    chans.add_argument("key", help="slug or id of the persona")
    chans.add_argument("--set", dest="set_name", metavar="NAME", help="set this overlay")
    chans.add_argument("--remove", metavar="NAME", help="remove this overlay")
    chans.add_argument("--min-words", type=int, help="shortest reply in words")
    chans.add_argument("--max-words", type=int, help="longest reply in words")
    chans.add_argument("--tone", default="", help="the tone, in a few words")
    chans.add_argument("--instructions", default="", help="anything else the writer should do")
    for flag in ("paragraphs", "lists", "hashtags", "emoji", "call-to-action"):
        chans.add_argument(f"--{flag}", choices=("yes", "no"), help=f"require or forbid {flag}")
    chans.set_defaults(run=_core(_channels))

    tpl = personas.add_parser("template", help="apply a template (no name: list them)")
    tpl.add_argument("key", nargs="?", help="slug or id of the persona")
    tpl.add_argument("name", nargs="?", help="the template to apply")
    tpl.set_defaults(run=_core(_template))


def _core(fn: Command) -> Callable[[Settings, argparse.Namespace], Awaitable[int]]:
    async def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            async with open_core(settings) as core:
                return await fn(core, args)
        except (
            StudioInputError,
            FingerprintError,
            InvalidPersonaChange,
            DefinitionError,
        ) as exc:
            print(f"personae: {exc}", file=sys.stderr)
            return 2

    return run


async def _create(core: Core, args: argparse.Namespace) -> int:
    definitions = load_file(args.file)
    if len(definitions) != 1:
        raise StudioInputError(f"{args.file}: holds {len(definitions)} personas; create takes one")
    persona = await core.personas.create(definitions[0], CLI_ACTOR)
    print(f"created {persona.slug} v{persona.version} (id {persona.id})")
    return 0


def _parse_sets(sets: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for item in sets:
        name, eq, raw = item.partition("=")
        if not eq or not name.strip():
            raise StudioInputError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        head, _, sub = name.strip().partition(".")
        if sub:
            fields.setdefault(head, {})[sub] = value
        else:
            fields[head] = value
    return fields


async def _edit(core: Core, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {}
    if args.file is not None:
        try:
            loaded = yaml.safe_load(read_bounded(args.file))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise StudioInputError(f"{args.file}: cannot read: {exc}") from None
        if not isinstance(loaded, dict):
            raise StudioInputError(f"{args.file}: expected a mapping of fields")
        fields.update(loaded)
    fields.update(_parse_sets(args.sets))
    if args.belief:
        fields["beliefs"] = [
            {"text": text.strip(), "source": source.strip()}
            for text, _, source in (b.partition("|") for b in args.belief)
        ]
    if not fields:
        raise StudioInputError("edit: nothing to change (use --set, --belief or --file)")
    if args.reason:
        fields["reason"] = args.reason
    try:
        patch = PersonaPatch.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "edit"
        raise StudioInputError(f"{where}: {err['msg']}") from None
    before = await core.personas.get(args.key)
    persona = await core.personas.edit(before.id, patch, CLI_ACTOR)
    if persona.version == before.version:
        print(f"{persona.slug} unchanged (v{persona.version})")
    else:
        print(f"{persona.slug} v{before.version} -> v{persona.version}")
    return 0


async def _delete(core: Core, args: argparse.Namespace) -> int:
    persona = await core.personas.get(args.key)
    await core.personas.delete(persona.id, CLI_ACTOR)
    print(f"deleted {persona.slug} (its versions are kept)")
    return 0


async def _versions(core: Core, args: argparse.Namespace) -> int:
    versions = await core.personas.versions(args.key)
    if args.json:
        print(json.dumps([VersionView.of(v).wire() for v in versions], indent=2))
        return 0
    for v in versions:
        print(f"v{v.version:<4} {v.created_at:%Y-%m-%d %H:%M}  {v.created_by:16} {v.reason}")
    return 0


async def _diff(core: Core, args: argparse.Namespace) -> int:
    diff = await studio.diff_versions(core.personas, args.key, args.old, args.new)
    if args.json:
        changes = [c.wire() for c in PersonaDiff.of(diff).changes]
        print(json.dumps(changes, indent=2, ensure_ascii=False))
        return 0
    print(f"v{diff.old} -> v{diff.new}: {len(diff.changes)} change(s)")
    for change in diff.changes:
        print(f"  {change}")
    return 0


async def _restore(core: Core, args: argparse.Namespace) -> int:
    persona = await core.personas.restore(args.key, args.version, CLI_ACTOR)
    print(f"{persona.slug}: version {args.version} restored as v{persona.version}")
    return 0


MAX_SAMPLE_BYTES = 4 * studio.MAX_SAMPLE_CHARS
"""The most bytes of sample files read (UTF-8 takes up to four a character): the
samples' characters are checked where a persona is generated (``MAX_SAMPLE_CHARS``)."""


def read_samples(paths: list[Path]) -> list[str]:
    """Writing samples from files: a ``.jsonl`` file holds one a line (a JSON string or
    an object with ``text``); any other file is one plain-text sample."""
    samples: list[str] = []
    left = MAX_SAMPLE_BYTES
    for path in paths:
        try:
            with path.open("rb") as handle:
                raw = handle.read(left + 1)  # never more than all samples may hold
        except OSError as exc:
            raise StudioInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        left -= len(raw)
        if left < 0:
            raise StudioInputError(
                f"{path}: the samples are larger than {MAX_SAMPLE_BYTES:,} bytes in all"
            )
        if b"\x00" in raw:
            raise StudioInputError(f"{path}: not a text file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StudioInputError(f"{path}: not UTF-8 text") from None
        if path.suffix != ".jsonl":
            samples.append(text)
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise StudioInputError(f"{path}:{number}: not valid JSON") from None
            if isinstance(item, dict):
                item = item.get("text")
            if not isinstance(item, str):
                raise StudioInputError(f'{path}:{number}: expected a string or {{"text": ...}}')
            samples.append(item)
    return samples


async def _generate(core: Core, args: argparse.Namespace) -> int:
    samples = read_samples(args.files)
    made = await studio.generate(
        core.personas, samples, CLI_ACTOR, name=args.name, channel=args.channel
    )
    fp, p = made.fingerprint, made.persona
    if args.json:
        print(json.dumps({"slug": p.slug, "fingerprint": fp.as_json()}, indent=2))
        return 0
    sl = fp.sentence_length
    print(f"generated {p.slug} (inactive) — {made.draft.archetype}, confidence {fp.confidence:.2f}")
    print(f"  {fp.samples} sample(s), {fp.words} words, {fp.sentences} sentences")
    print(f"  sentence length: median {sl['median']:g} (p10 {sl['p10']:g}, p90 {sl['p90']:g})")
    st = fp.sentence_types
    print(f"  questions {st['question']:.0%}, exclamations {st['exclamation']:.0%}; MTLD {fp.mtld}")
    print("  words: " + ", ".join(w["word"] for w in fp.characteristic_words[:8]))
    print(f"activate it with: personae personas edit {p.slug} --set active=true")
    return 0


def _flag(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


async def _channels(core: Core, args: argparse.Namespace) -> int:
    if args.set_name and args.remove:
        raise StudioInputError("channels: --set and --remove together")
    persona = await core.personas.get(args.key)
    if args.set_name:
        try:
            channel = ChannelDef.model_validate(
                {
                    "name": args.set_name,
                    "min_words": args.min_words,
                    "max_words": args.max_words,
                    "tone": args.tone,
                    "instructions": args.instructions,
                    "paragraphs": _flag(args.paragraphs),
                    "lists": _flag(args.lists),
                    "hashtags": _flag(args.hashtags),
                    "emoji": _flag(args.emoji),
                    "call_to_action": _flag(args.call_to_action),
                }
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "channel"
            raise StudioInputError(f"channel {where}: {err['msg']}") from None
        persona = await studio.set_channel(core.personas, persona.slug, channel, CLI_ACTOR)
        print(f"{persona.slug} v{persona.version}: channel {channel.name} set")
    elif args.remove:
        persona = await studio.remove_channel(core.personas, persona.slug, args.remove, CLI_ACTOR)
        print(f"{persona.slug} v{persona.version}: channel {args.remove} removed")
    own = {c.name for c in persona.channels}
    for name, c in sorted(effective_channels(persona).items()):
        origin = (
            "built in"
            if name in BUILTIN and name not in own
            else ("overlay" if name in BUILTIN else "own")
        )
        words = f"{c.min_words or '-'}..{c.max_words or '-'} words"
        print(f"  {name:12} {origin:9} {words:16} {c.tone}")
    return 0


async def _template(core: Core, args: argparse.Namespace) -> int:
    if args.key is None or args.name is None:
        for t in TEMPLATES.values():
            print(f"{t.name:16} {t.title:16} {t.description}")
        return 0
    persona = await studio.apply_template(core.personas, args.key, args.name, CLI_ACTOR)
    print(f"{persona.slug} v{persona.version}: template {args.name} applied")
    return 0
