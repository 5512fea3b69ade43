"""Character cards, the format role-play tools share: Character Card V2 (``chara_card_v2``)
and V3 (``chara_card_v3``), read from JSON, from PNG (``chara`` / ``ccv3`` tEXt chunks
holding base64 JSON) and from CHARX (a zip with ``card.json``), and written as JSON (as
PNG by :mod:`personas.card_png`).

A card becomes a persona definition (``name``, ``description``, ``system_prompt``,
``tags`` as domains) plus a :class:`Card` with what a definition has no field for: the
personality and scenario, greetings, example messages, post-history instructions, the
character book (lore) and every field this module does not know, kept as they came so
an exported card gives them back."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from personas.definitions import PersonaDef
from personas.errors import PersonaError

Spec = Literal["chara_card_v2", "chara_card_v3"]
SPECS: dict[str, str] = {"chara_card_v2": "2.0", "chara_card_v3": "3.0"}
MAX_FILE_BYTES = 32 * 1024**2
"""A card file larger than this is refused (PNG and CHARX carry images)."""
MAX_CARD_BYTES = 4 * 1024**2
"""The card's JSON, decoded, may be at most this large."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_FIELDS = (
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
)
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
"""A V1 card's fields, all at its top level; a V2 card repeats them there."""
_DEF_DESCRIPTION_MAX = 2_000
_DEF_SYSTEM_MAX = 8_000


class CardError(PersonaError):
    """A card file that cannot be read; the message names the file."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source


@dataclass(frozen=True, slots=True)
class LoreEntry:
    keys: tuple[str, ...]
    content: str
    constant: bool = False
    enabled: bool = True
    case_sensitive: bool = False
    order: int = 100


@dataclass(frozen=True, slots=True)
class Card:
    """What a card holds beyond a persona definition. ``data`` is the card's ``data``
    object as read (unknown fields included), the source of an export."""

    spec: Spec
    data: Mapping[str, Any] = field(repr=False)

    def text(self, name: str) -> str:
        value = self.data.get(name)
        return value if isinstance(value, str) else ""

    @property
    def greetings(self) -> tuple[str, ...]:
        """``first_mes`` then the alternate greetings, the non-blank ones."""
        found = [self.text("first_mes")]
        alternates = self.data.get("alternate_greetings")
        if isinstance(alternates, list):
            found.extend(a for a in alternates if isinstance(a, str))
        return tuple(g for g in found if g.strip())

    @property
    def lore(self) -> tuple[LoreEntry, ...]:
        book = self.data.get("character_book")
        entries = book.get("entries") if isinstance(book, dict) else None
        if not isinstance(entries, list):
            return ()
        out = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("content"), str):
                continue
            given = e.get("keys")
            keys: list[Any] = given if isinstance(given, list) else []
            order = e.get("insertion_order")
            out.append(
                LoreEntry(
                    keys=tuple(k for k in keys if isinstance(k, str) and k.strip()),
                    content=e["content"],
                    constant=e.get("constant") is True,
                    enabled=e.get("enabled") is not False,
                    case_sensitive=e.get("case_sensitive") is True,
                    order=order if isinstance(order, int) else i,
                )
            )
        return tuple(out)


# ---- reading --------------------------------------------------------------------------


def looks_like_card_file(path: Path) -> bool:
    """Whether ``path`` should be read as a card: PNG and CHARX files always, JSON when
    it names a card spec."""
    suffix = path.suffix.lower()
    if suffix in (".png", ".charx"):
        return True
    if suffix != ".json" or not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return (
        b'"chara_card_v' in head
        or (b'"spec"' in head and b'"data"' in head)
        or b'"first_mes"' in head  # a V1 card: its fields at the top level
    )


def read_card_file(path: Path) -> tuple[PersonaDef, Card]:
    """The persona definition and card in a JSON, PNG or CHARX file."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CardError(source, f"larger than {MAX_FILE_BYTES // 1024**2} MiB")
        raw = path.read_bytes()
    except OSError as exc:
        raise CardError(source, f"cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if raw.startswith(_PNG_SIGNATURE):
        text = _from_png(raw, source)
    elif raw.startswith(b"PK"):
        text = _from_charx(raw, source)
    elif suffix in (".png", ".charx"):
        raise CardError(source, f"not a {suffix[1:].upper()} file")
    else:
        text = raw
    return parse_card(text, source=source)


def _from_png(raw: bytes, source: str) -> bytes:
    """The card JSON of a PNG: the ``ccv3`` text chunk, else ``chara``, base64-decoded.
    Only the first chunk of each of those keywords is read (others are skipped unread),
    and a compressed one is inflated no further than the largest card's base64 can be:
    a chunk that inflates past it is refused, so a small file cannot fill memory."""
    texts: dict[str, bytes] = {}
    at = len(_PNG_SIGNATURE)
    while at + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[at : at + 8])
        data = raw[at + 8 : at + 8 + length]
        if len(data) < length:
            raise CardError(source, "a truncated PNG")
        at += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        name, _, rest = data.partition(b"\x00")
        keyword = name.decode("latin-1").lower()
        if keyword not in ("ccv3", "chara") or keyword in texts:
            continue
        if kind == b"tEXt":
            value: bytes | None = rest
        elif kind == b"zTXt":
            value = _inflate(rest[1:], source)
        else:
            parts = rest[2:].split(b"\x00", 2)
            value = parts[2] if len(parts) == 3 else b""
            if rest[:1] == b"\x01":
                value = _inflate(value, source)
        if value is not None:
            texts[keyword] = value
    encoded = texts.get("ccv3") or texts.get("chara")
    if encoded is None:
        raise CardError(source, "no character card in this PNG (no 'chara' or 'ccv3' text chunk)")
    if len(encoded) > _MAX_ENCODED:
        raise CardError(source, f"the card is larger than {MAX_CARD_BYTES // 1024**2} MiB")
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CardError(source, "the PNG's card chunk is not valid base64") from None


_MAX_ENCODED = MAX_CARD_BYTES * 4 // 3 + 4
"""The longest base64 text of a card of ``MAX_CARD_BYTES``."""


def _inflate(compressed: bytes, source: str) -> bytes | None:
    """A compressed text chunk's text, inflated at most one byte past ``_MAX_ENCODED``
    (then refused as too large); None when it is not valid zlib data."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, _MAX_ENCODED + 1)
    except zlib.error:
        return None
    if len(text) > _MAX_ENCODED:
        raise CardError(source, f"the card is larger than {MAX_CARD_BYTES // 1024**2} MiB")
    return text


def _from_charx(raw: bytes, source: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            try:
                info = archive.getinfo("card.json")
            except KeyError:
                raise CardError(source, "no card.json in this CHARX archive") from None
            if info.file_size > MAX_CARD_BYTES:
                raise CardError(source, f"card.json is larger than {MAX_CARD_BYTES // 1024**2} MiB")
            with archive.open(info) as handle:
                return handle.read(MAX_CARD_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise CardError(source, f"not a readable CHARX (zip) archive: {exc}") from None


def parse_card(raw: bytes | str, *, source: str) -> tuple[PersonaDef, Card]:
    """A card's JSON as a persona definition and the card."""
    if len(raw) > MAX_CARD_BYTES:
        raise CardError(source, f"the card is larger than {MAX_CARD_BYTES // 1024**2} MiB")
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise CardError(source, "the card is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise CardError(source, f"the card is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise CardError(source, "the card is nested too deeply") from None
    if not isinstance(doc, dict):
        raise CardError(source, "a card is a JSON object")
    spec = doc.get("spec")
    if spec not in SPECS:
        if spec is None and isinstance(doc.get("name"), str):
            # a V1 card (the fields at top level): read as V2
            spec, doc = "chara_card_v2", {"spec": "chara_card_v2", "data": doc}
        else:
            raise CardError(source, f"unknown card spec {spec!r} (expected chara_card_v2 or v3)")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise CardError(source, "the card has no 'data' object")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise CardError(source, "the card has no name")
    for name in _TEXT_FIELDS:
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise CardError(source, f"data.{name}: must be text")
    if "\x00" in json.dumps(data):
        raise CardError(source, "the card must not contain NUL characters")
    card = Card(spec, data)  # type: ignore[arg-type]
    return _definition(card, source), card


def _definition(card: Card, source: str) -> PersonaDef:
    """The persona definition of a card: Personae's own (in ``extensions.personae``, as
    this module exports it) when present, else one made from the card's fields."""
    extensions = card.data.get("extensions")
    own = extensions.get("personae") if isinstance(extensions, dict) else None
    try:
        made = PersonaDef.model_validate(_fields(card))
        if not isinstance(own, dict):
            return made
        # the card as exported, perhaps edited since in another tool: its own fields win
        ours = PersonaDef.model_validate(own)
        exported = ours.model_dump()
        changed = {
            key: value
            for key, value in made.model_dump().items()
            if key in ("name", "description", "system_prompt", "domains")
            and value != exported[key]
            and _given(card, key)
        }
        return ours.model_copy(update=changed) if changed else ours
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "card"
        raise CardError(source, f"{where}: {err['msg']}") from None


def _given(card: Card, key: str) -> bool:
    if key == "domains":
        tags = card.data.get("tags")
        return isinstance(tags, list) and bool(tags)
    return bool(card.text(key).strip())


def _fields(card: Card) -> dict[str, Any]:
    """A persona definition made from the card's own fields."""
    name = card.text("name").strip()
    description = card.text("description").strip() or card.text("personality").strip()
    given = card.data.get("tags")
    tags: list[Any] = given if isinstance(given, list) else []
    return {
        "slug": slugify(name),
        "name": name[:120],
        "description": _clip(description or name, _DEF_DESCRIPTION_MAX),
        "role": "character",
        "system_prompt": _clip(
            card.text("system_prompt").replace("{{original}}", "").strip(), _DEF_SYSTEM_MAX
        ),
        "domains": [t[:60] for t in tags if isinstance(t, str) and t.strip()][:20],
        "persona_type": "fictional",
        "modes": [{"mode": "companion"}, {"mode": "storyteller"}],
        "style": {"default_mode": "companion"},
    }


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug if len(slug) >= 2 else f"card-{slug or 'character'}"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


# ---- writing --------------------------------------------------------------------------


def export_card(definition: PersonaDef, card: Card | None, spec: Spec) -> dict[str, Any]:
    """A card of ``spec`` for a persona: the imported card's fields as they came, each
    replaced by the persona's own where it was changed since (name, description, system
    prompt, domains as tags), with the definition itself under ``extensions.personae``
    so that importing the card restores the persona as it is. A V2 card repeats the V1
    fields at its top level."""
    data: dict[str, Any] = dict(card.data) if card is not None else {}
    made: dict[str, Any] = {}
    if card is not None:
        try:
            made = PersonaDef.model_validate(_fields(card)).model_dump()
        except ValidationError:
            made = {}
    current = definition.model_dump()
    for ours, theirs in (
        ("name", "name"),
        ("description", "description"),
        ("system_prompt", "system_prompt"),
        ("domains", "tags"),
    ):
        if theirs not in data or made.get(ours) != current[ours]:
            value = current[ours]
            data[theirs] = list(value) if isinstance(value, tuple) else value
    for name in (*_TEXT_FIELDS, "creator", "character_version"):
        data.setdefault(name, "")
    data.setdefault("alternate_greetings", [])
    if spec == "chara_card_v3":
        data.setdefault("group_only_greetings", [])
    extensions = dict(data.get("extensions") or {})
    extensions["personae"] = definition.canonical()
    data["extensions"] = extensions
    doc: dict[str, Any] = {"spec": spec, "spec_version": SPECS[spec], "data": data}
    if spec == "chara_card_v2":
        # V1 readers (and V2 ones that still look there) read these at the top level
        return {**{name: data.get(name, "") for name in V1_FIELDS}, **doc}
    return doc


# ---- the prompt -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardPrompt:
    """What a card adds to a turn's system prompt: ``sections`` after the persona's
    description, ``closing`` at its end."""

    sections: tuple[str, ...] = ()
    closing: tuple[str, ...] = ()


LORE_SCAN_LINES = 4
"""How many recent transcript lines (with the user's message) lore keys are looked for in."""
_EXAMPLES_MAX = 1_500
_LORE_MAX = 1_600


def card_prompt(
    card: Card, *, persona_name: str, user_name: str, recent: Sequence[str]
) -> CardPrompt:
    """The card's personality, scenario, example messages and the lore whose keys
    appear in ``recent`` (the latest lines, the user's message last), with ``{{char}}``
    and ``{{user}}`` filled in."""

    def fill(text: str) -> str:
        return fill_names(text, persona_name, user_name)

    sections: list[str] = []
    description = card.text("description").strip()
    if len(description) > _DEF_DESCRIPTION_MAX:
        sections.append(fill(description))  # the definition holds only its beginning
    if card.text("personality").strip():
        sections.append(f"Personality: {fill(card.text('personality'))}")
    if card.text("scenario").strip():
        sections.append(f"Scenario: {fill(card.text('scenario'))}")
    lore = triggered_lore(card.lore, recent[-(LORE_SCAN_LINES + 1) :])
    if lore:
        text = "\n".join(f"- {fill(e.content)}" for e in lore)
        sections.append("What you know that matters now:\n" + _clip(text, _LORE_MAX))
    examples = card.text("mes_example").replace("<START>", "").strip()
    if examples:
        sections.append(
            f"Examples of how {persona_name} speaks:\n" + _clip(fill(examples), _EXAMPLES_MAX)
        )
    closing = card.text("post_history_instructions").replace("{{original}}", "").strip()
    return CardPrompt(tuple(sections), (fill(closing),) if closing else ())


def fill_names(text: str, char: str, user: str) -> str:
    """A card's text with ``{{char}}`` / ``<BOT>`` and ``{{user}}`` / ``<USER>`` filled in."""
    out = re.sub(r"\{\{char\}\}|<BOT>", char, text, flags=re.IGNORECASE)
    return re.sub(r"\{\{user\}\}|<USER>", user, out, flags=re.IGNORECASE).strip()


def triggered_lore(entries: Sequence[LoreEntry], recent: Sequence[str]) -> list[LoreEntry]:
    """The enabled entries that are constant or have a key in ``recent``, in order."""
    joined = "\n".join(recent)
    lowered = joined.lower()
    found = []
    for e in entries:
        if not e.enabled or not e.content.strip():
            continue
        if e.constant or any(
            (k in joined) if e.case_sensitive else (k.lower() in lowered) for k in e.keys
        ):
            found.append(e)
    return sorted(found, key=lambda e: e.order)
