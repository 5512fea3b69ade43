"""Persona values: frozen, slotted, safe to share between tasks and to cache."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

PersonaType = Literal["historical", "fictional", "synthetic"]
PERSONA_TYPES: tuple[str, ...] = ("historical", "fictional", "synthetic")
OCEAN_TRAITS: tuple[str, ...] = (
    "openness",
    "conscientiousness",
    "extraversion",
    "agreeableness",
    "neuroticism",
)


@dataclass(frozen=True, slots=True)
class Trait:
    """A named trait with an intensity in 0..1.

    ``inherited`` marks a core trait every persona gets unless it defines its own;
    ``evolves`` opts the trait into evolution toward observed behaviour; ``locked``
    forbids any automatic change."""

    name: str
    type: str
    value: float
    description: str = ""
    source: str = ""
    inherited: bool = False
    evolves: bool = False
    locked: bool = False


@dataclass(frozen=True, slots=True)
class Belief:
    text: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class Mode:
    mode: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class StyleConfig:
    humour_usage: float = 0.3
    emotional_style: str = "balanced"
    language_style: str = "conversational"
    voice_enabled: bool = False
    default_mode: str | None = None
    temperature: float = 0.7
    max_tokens: int = 512


@dataclass(frozen=True, slots=True)
class Channel:
    """How a persona writes on one platform (``chat``, ``linkedin``, a user's own...).

    Word bounds are inclusive; each structure flag is ``True`` (required), ``False``
    (must be absent) or ``None`` (free). See :mod:`personas.channels`."""

    name: str
    min_words: int | None = None
    max_words: int | None = None
    tone: str = ""
    paragraphs: bool | None = None
    lists: bool | None = None
    hashtags: bool | None = None
    emoji: bool | None = None
    call_to_action: bool | None = None
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class Persona:
    """A stored persona as a turn sees it: its own traits merged over the core traits."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    role: str
    system_prompt: str
    domains: tuple[str, ...]
    is_real: bool
    persona_type: PersonaType
    birth_date: dt.date | None
    avatar_url: str | None
    version: int
    active: bool
    protected: bool
    traits: tuple[Trait, ...]
    beliefs: tuple[Belief, ...]
    modes: tuple[Mode, ...]
    style: StyleConfig
    created_at: dt.datetime
    updated_at: dt.datetime
    channels: tuple[Channel, ...] = ()
    """The persona's own channel overlays (built-in ones it changes, and its own)."""

    def trait(self, name: str) -> Trait | None:
        for t in self.traits:
            if t.name == name:
                return t
        return None

    @property
    def own_traits(self) -> tuple[Trait, ...]:
        return tuple(t for t in self.traits if not t.inherited)

    @property
    def enabled_modes(self) -> tuple[str, ...]:
        return tuple(m.mode for m in self.modes if m.enabled)


@dataclass(frozen=True, slots=True)
class PersonaVersion:
    persona_id: uuid.UUID
    version: int
    reason: str
    created_by: str
    created_at: dt.datetime
    snapshot: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Analysis:
    """A linguistic fingerprint a persona was generated from: what was measured, on how
    many samples and words, how confident it is, and when."""

    kind: str
    samples: int
    words: int
    confidence: float
    fingerprint: dict[str, Any] = field(repr=False)
    created_by: str = "system"
    created_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class PersonaPage:
    items: tuple[Persona, ...]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    persona: Persona
    rank: float


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks for a change: edits of protected personas need ``is_admin``."""

    name: str
    is_admin: bool = False
    can_edit: bool = True
    """Editors change unprotected personas; plain users change none."""

    @classmethod
    def system(cls) -> Actor:
        return cls(name="system", is_admin=True)


ImportOutcome = Literal["created", "updated", "unchanged", "kept"]
"""``kept``: a user changed the persona since it was imported, and the import left it."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    slug: str
    outcome: ImportOutcome
    version: int
