"""The persona definition format: what persona files, snapshots and create calls hold.

A definitions file is YAML or JSON with a top-level ``personas`` list (or a single
persona mapping). Every field is validated here; errors name the file, the persona
and the field."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personas.errors import DefinitionError
from personas.types import OCEAN_TRAITS, Persona

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
RESERVED_SLUGS = frozenset({"search", "generate", "templates"})
"""Fixed paths under ``/api/personas/`` a slug would be shadowed by."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValueError("must not contain NUL characters")
        return value


class TraitDef(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: str = Field(default="behaviour", pattern=NAME_PATTERN)
    value: float = Field(ge=0.0, le=1.0)
    description: str = Field(default="", max_length=500)
    source: str = Field(default="", max_length=500)
    evolves: bool = False
    locked: bool = False

    @model_validator(mode="after")
    def _ocean_names(self) -> TraitDef:
        if self.type == "ocean" and self.name not in OCEAN_TRAITS:
            raise ValueError(f"ocean trait must be one of {', '.join(OCEAN_TRAITS)}")
        if self.evolves and self.locked:
            raise ValueError("a locked trait cannot evolve")
        return self


class BeliefDef(_Strict):
    text: str = Field(min_length=1, max_length=2_000)
    source: str = Field(default="", max_length=500)


class ModeDef(_Strict):
    mode: str = Field(pattern=NAME_PATTERN)
    enabled: bool = True


class StyleDef(_Strict):
    humour_usage: float = Field(default=0.3, ge=0.0, le=1.0)
    emotional_style: str = Field(default="balanced", min_length=1, max_length=60)
    language_style: str = Field(default="conversational", min_length=1, max_length=60)
    voice_enabled: bool = False
    default_mode: str | None = Field(default=None, pattern=NAME_PATTERN)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=16, le=8_192)


class ChannelDef(_Strict):
    """A channel overlay: target length, tone and structure on one platform. Each
    structure flag is true (required), false (must be absent) or null (free)."""

    name: str = Field(pattern=NAME_PATTERN)
    min_words: int | None = Field(default=None, ge=1, le=10_000)
    max_words: int | None = Field(default=None, ge=1, le=10_000)
    tone: str = Field(default="", max_length=200)
    paragraphs: bool | None = None
    lists: bool | None = None
    hashtags: bool | None = None
    emoji: bool | None = None
    call_to_action: bool | None = None
    instructions: str = Field(default="", max_length=1_000)

    @model_validator(mode="after")
    def _range(self) -> ChannelDef:
        if (
            self.min_words is not None
            and self.max_words is not None
            and self.min_words > self.max_words
        ):
            raise ValueError("min_words must not exceed max_words")
        return self


class PersonaDef(_Strict):
    """One persona as written in a definitions file."""

    slug: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=2_000)
    role: str = Field(default="", max_length=200)
    system_prompt: str = Field(default="", max_length=8_000)
    domains: tuple[str, ...] = Field(default=(), max_length=20)
    is_real: bool = False
    persona_type: Literal["historical", "fictional", "synthetic"] = "synthetic"
    birth_date: dt.date | None = None
    avatar_url: str | None = Field(default=None, max_length=500)
    active: bool = True
    protected: bool = False
    traits: tuple[TraitDef, ...] = Field(default=(), max_length=64)
    beliefs: tuple[BeliefDef, ...] = Field(default=(), max_length=64)
    modes: tuple[ModeDef, ...] = Field(default=(), max_length=16)
    style: StyleDef = StyleDef()
    channels: tuple[ChannelDef, ...] = Field(default=(), max_length=16)

    @field_validator("slug")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_SLUGS:
            raise ValueError(f"{value!r} is reserved (a route of the API)")
        return value

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(d.strip().lower() for d in value if d.strip()))
        for d in cleaned:
            if len(d) > 60:
                raise ValueError(f"domain {d[:20]!r}... is longer than 60 characters")
        return cleaned

    @model_validator(mode="after")
    def _consistent(self) -> PersonaDef:
        names = [t.name for t in self.traits]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"trait defined twice: {', '.join(dupes)}")
        modes = [m.mode for m in self.modes]
        if len(set(modes)) != len(modes):
            raise ValueError("mode listed twice")
        channels = [c.name for c in self.channels]
        if len(set(channels)) != len(channels):
            raise ValueError("channel defined twice")
        default = self.style.default_mode
        if default is not None and default not in {m.mode for m in self.modes if m.enabled}:
            raise ValueError(f"style.default_mode {default!r} is not an enabled mode")
        if self.is_real != (self.persona_type == "historical"):
            raise ValueError("is_real must be true exactly when persona_type is 'historical'")
        return self

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready dict that compares equal for equal personas (order kept where it
        carries meaning: beliefs and modes; traits sorted by name)."""
        data = self.model_dump(mode="json")
        data["traits"] = sorted(data["traits"], key=lambda t: t["name"])
        data["channels"] = sorted(data["channels"], key=lambda c: c["name"])
        return data


class DefinitionsFile(_Strict):
    personas: tuple[PersonaDef, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_slugs(self) -> DefinitionsFile:
        slugs = [p.slug for p in self.personas]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ValueError(f"slug defined twice: {', '.join(dupes)}")
        return self


def parse_definitions(text: str, *, source: str) -> tuple[PersonaDef, ...]:
    """Parse and validate a definitions document; ``source`` names it in errors."""
    try:
        raw = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(source, None, None, f"not valid YAML/JSON: {exc}") from None
    except RecursionError:
        raise DefinitionError(source, None, None, "nested too deeply") from None
    if isinstance(raw, dict) and "personas" not in raw:
        raw = {"personas": [raw]}
    if not isinstance(raw, dict):
        raise DefinitionError(source, None, None, "expected a mapping with a 'personas' list")
    try:
        return DefinitionsFile.model_validate(raw).personas
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DefinitionError(source, *_locate(raw, err["loc"]), err["msg"]) from None


def _locate(raw: dict[str, Any], loc: tuple[int | str, ...]) -> tuple[str | None, str | None]:
    if len(loc) < 2 or loc[0] != "personas" or not isinstance(loc[1], int):
        return None, ".".join(str(p) for p in loc) or None
    items = raw.get("personas")
    persona: str | None = f"#{loc[1] + 1}"
    if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
        slug = items[loc[1]].get("slug")
        if isinstance(slug, str):
            persona = slug
    field = ".".join(str(p) for p in loc[2:]) or None
    return persona, field


MAX_DEFINITION_BYTES = 4 * 1024**2
"""The largest definition file read (a library of personas fits in far less)."""


def read_bounded(path: Path, limit: int = MAX_DEFINITION_BYTES) -> str:
    """A UTF-8 text file, read no further than ``limit`` bytes: a larger one raises
    ``ValueError`` saying so (as does one that is not UTF-8); ``OSError`` as opened."""
    with path.open("rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"larger than {limit // 1024**2} MiB")
    return raw.decode("utf-8")


def load_file(path: Path) -> tuple[PersonaDef, ...]:
    try:
        text = read_bounded(path)
    except (OSError, ValueError) as exc:
        raise DefinitionError(str(path), None, None, f"cannot read: {exc}") from None
    return parse_definitions(text, source=str(path))


def iter_definition_files(path: Path) -> Iterator[Path]:
    """The definition files at ``path``: the file itself, or a folder's YAML/JSON files
    in name order."""
    if path.is_dir():
        yield from sorted(
            p for p in path.iterdir() if p.suffix in {".yaml", ".yml", ".json"} and p.is_file()
        )
    elif path.exists():
        yield path
    else:
        raise DefinitionError(str(path), None, None, "no such file or folder")


def load_path(path: Path) -> tuple[PersonaDef, ...]:
    """Every persona under ``path``, validated as a whole before anything is written."""
    defs: list[PersonaDef] = []
    seen: dict[str, Path] = {}
    for file in iter_definition_files(path):
        for d in load_file(file):
            if d.slug in seen:
                raise DefinitionError(
                    str(file), d.slug, "slug", f"also defined in {seen[d.slug].name}"
                )
            seen[d.slug] = file
            defs.append(d)
    return tuple(defs)


def shipped_library() -> Path:
    return Path(__file__).resolve().parent / "library"


class TraitPatch(_Strict):
    """Change one trait: ``set`` to ``intensity``, or ``increase``/``decrease`` by it.
    Setting a trait the persona lacks adds it (with ``type``, default ``behaviour``)."""

    name: str = Field(pattern=NAME_PATTERN)
    action: Literal["set", "increase", "decrease"] = "set"
    intensity: float = Field(ge=0.0, le=1.0)
    type: str | None = Field(default=None, pattern=NAME_PATTERN)
    evolves: bool | None = None
    locked: bool | None = None


class StylePatch(_Strict):
    humour_usage: float | None = Field(default=None, ge=0.0, le=1.0)
    emotional_style: str | None = Field(default=None, min_length=1, max_length=60)
    language_style: str | None = Field(default=None, min_length=1, max_length=60)
    voice_enabled: bool | None = None
    default_mode: str | None = Field(default=None, pattern=NAME_PATTERN)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=16, le=8_192)


class SettingsPatch(_Strict):
    """A partial change of a persona's traits, modes and style (``PATCH .../settings``)."""

    traits: tuple[TraitPatch, ...] = Field(default=(), max_length=64)
    modes: dict[str, bool] = Field(default_factory=dict, max_length=16)
    style: StylePatch = StylePatch()
    active: bool | None = None


def apply_patch(current: PersonaDef, patch: SettingsPatch) -> PersonaDef:
    """The definition ``current`` becomes under ``patch``; raises ValueError if invalid."""
    traits = {t.name: t.model_dump() for t in current.traits}
    for change in patch.traits:
        old = traits.get(change.name)
        if old is None:
            if change.action != "set":
                raise ValueError(f"trait {change.name!r} does not exist; use action 'set'")
            old = {"name": change.name, "type": change.type or "behaviour", "value": 0.0}
        base = float(old["value"])
        value = {
            "set": change.intensity,
            "increase": min(1.0, base + change.intensity),
            "decrease": max(0.0, base - change.intensity),
        }[change.action]
        updated = {**old, "value": value}
        for flag in ("type", "evolves", "locked"):
            if getattr(change, flag) is not None:
                updated[flag] = getattr(change, flag)
        traits[change.name] = updated
    modes = {m.mode: m.enabled for m in current.modes}
    for mode, enabled in patch.modes.items():
        modes[mode] = enabled
    data = current.model_dump()
    data["traits"] = list(traits.values())
    data["modes"] = [{"mode": m, "enabled": e} for m, e in modes.items()]
    data["style"] = {**data["style"], **patch.style.model_dump(exclude_none=True)}
    if patch.active is not None:
        data["active"] = patch.active
    try:
        return PersonaDef.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{where}: {err['msg']}" if where else err["msg"]) from None


class PersonaPatch(_Strict):
    """A partial update of a persona (``PATCH /api/personas/{key}``): each field given
    replaces that part of the definition whole (``beliefs`` is the new list of beliefs);
    fields left out stay as they are. The slug never changes."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, min_length=1, max_length=2_000)
    role: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = Field(default=None, max_length=8_000)
    domains: tuple[str, ...] | None = Field(default=None, max_length=20)
    is_real: bool | None = None
    persona_type: Literal["historical", "fictional", "synthetic"] | None = None
    birth_date: dt.date | None = None
    avatar_url: str | None = Field(default=None, max_length=500)
    active: bool | None = None
    protected: bool | None = None
    traits: tuple[TraitDef, ...] | None = Field(default=None, max_length=64)
    beliefs: tuple[BeliefDef, ...] | None = Field(default=None, max_length=64)
    modes: tuple[ModeDef, ...] | None = Field(default=None, max_length=16)
    style: StylePatch | None = None
    channels: tuple[ChannelDef, ...] | None = Field(default=None, max_length=16)
    reason: str = Field(default="", max_length=300, description="recorded with the version")


def apply_persona_patch(current: PersonaDef, patch: PersonaPatch) -> PersonaDef:
    """The definition ``current`` becomes under ``patch``; raises ValueError if invalid."""
    data = current.model_dump()
    given = patch.model_dump(exclude_unset=True, exclude={"reason", "style"})
    data.update(given)
    if patch.style is not None:
        data["style"] = {**data["style"], **patch.style.model_dump(exclude_none=True)}
    return validated(data)


def validated(data: dict[str, Any]) -> PersonaDef:
    """``data`` as a definition; a ValueError names the first bad field."""
    try:
        return PersonaDef.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{where}: {err['msg']}" if where else err["msg"]) from None


def to_definition(persona: Persona) -> PersonaDef:
    """The definition (own traits only) a persona was made from: what versions snapshot."""
    return PersonaDef.model_validate(
        {
            "slug": persona.slug,
            "name": persona.name,
            "description": persona.description,
            "role": persona.role,
            "system_prompt": persona.system_prompt,
            "domains": persona.domains,
            "is_real": persona.is_real,
            "persona_type": persona.persona_type,
            "birth_date": persona.birth_date,
            "avatar_url": persona.avatar_url,
            "active": persona.active,
            "protected": persona.protected,
            "traits": [
                {
                    "name": t.name,
                    "type": t.type,
                    "value": t.value,
                    "description": t.description,
                    "source": t.source,
                    "evolves": t.evolves,
                    "locked": t.locked,
                }
                for t in persona.own_traits
            ],
            "beliefs": [{"text": b.text, "source": b.source} for b in persona.beliefs],
            "modes": [{"mode": m.mode, "enabled": m.enabled} for m in persona.modes],
            "channels": [asdict(c) for c in persona.channels],
            "style": {
                "humour_usage": persona.style.humour_usage,
                "emotional_style": persona.style.emotional_style,
                "language_style": persona.style.language_style,
                "voice_enabled": persona.style.voice_enabled,
                "default_mode": persona.style.default_mode,
                "temperature": persona.style.temperature,
                "max_tokens": persona.style.max_tokens,
            },
        }
    )
