"""Views of personas: the persona as users see it, as the studio sees it (with trait
sources and channel overlays), ranked and searched lists, versions and their diff,
channels, templates, analyses and generated drafts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import Field

from personas import Persona, PersonaVersion, Trait
from personas.channels import BUILTIN, effective_channels
from personas.diff import ChangeKind
from personas.templates import Template
from personas.types import Analysis, Channel, PersonaType
from runtime.usecases.studio import Generated, VersionDiff
from runtime.views.base import Timestamp, View


class PersonaRef(View):
    """Which persona: enough to name and link it."""

    id: uuid.UUID
    slug: str
    name: str

    @classmethod
    def of(cls, p: Persona) -> PersonaRef:
        return cls(id=p.id, slug=p.slug, name=p.name)


class TraitView(View):
    name: str
    type: str
    value: float
    inherited: bool
    evolves: bool
    locked: bool
    description: str

    @classmethod
    def of(cls, t: Trait) -> TraitView:
        return cls(**_trait_fields(t))


class StudioTraitView(TraitView):
    """A trait with where its value comes from (a study, a sample analysis...)."""

    source: str

    @classmethod
    def of(cls, t: Trait) -> StudioTraitView:
        return cls(**_trait_fields(t), source=t.source)


def _trait_fields(t: Trait) -> dict[str, Any]:
    return {
        "name": t.name,
        "type": t.type,
        "value": t.value,
        "inherited": t.inherited,
        "evolves": t.evolves,
        "locked": t.locked,
        "description": t.description,
    }


class BeliefView(View):
    text: str
    source: str


class ModeView(View):
    mode: str
    enabled: bool


class StyleView(View):
    humour_usage: float
    emotional_style: str
    language_style: str
    voice_enabled: bool
    default_mode: str | None
    temperature: float
    max_tokens: int


class PersonaView(PersonaRef):
    """A persona as users see it: never its system prompt."""

    description: str
    role: str
    domains: list[str]
    persona_type: PersonaType
    is_real: bool
    birth_date: dt.date | None
    avatar_url: str | None
    version: int
    active: bool
    protected: bool
    traits: Sequence[TraitView]
    beliefs: list[BeliefView]
    modes: list[ModeView]
    style: StyleView
    updated_at: Timestamp

    @classmethod
    def of(cls, p: Persona) -> PersonaView:
        return cls(**_persona_fields(p), traits=[TraitView.of(t) for t in p.traits])


def _persona_fields(p: Persona) -> dict[str, Any]:
    """A persona's view fields but its traits (whose view depends on who shows them)."""
    s = p.style
    return {
        "id": p.id,
        "slug": p.slug,
        "name": p.name,
        "description": p.description,
        "role": p.role,
        "domains": list(p.domains),
        "persona_type": p.persona_type,
        "is_real": p.is_real,
        "birth_date": p.birth_date,
        "avatar_url": p.avatar_url,
        "version": p.version,
        "active": p.active,
        "protected": p.protected,
        "beliefs": [BeliefView(text=b.text, source=b.source) for b in p.beliefs],
        "modes": [ModeView(mode=m.mode, enabled=m.enabled) for m in p.modes],
        "style": StyleView(
            humour_usage=s.humour_usage,
            emotional_style=s.emotional_style,
            language_style=s.language_style,
            voice_enabled=s.voice_enabled,
            default_mode=s.default_mode,
            temperature=s.temperature,
            max_tokens=s.max_tokens,
        ),
        "updated_at": p.updated_at,
    }


class RankedPersona(PersonaView):
    """A full-text search result: the persona with its rank."""

    rank: float

    @classmethod
    def ranked(cls, p: Persona, rank: float) -> RankedPersona:
        return cls(
            **_persona_fields(p), traits=[TraitView.of(t) for t in p.traits], rank=round(rank, 4)
        )


class PersonaSearchHit(PersonaView):
    """A search by meaning and text: the persona with both scores and their blend."""

    score: float
    meaning: float
    text: float

    @classmethod
    def hit(cls, p: Persona, *, score: float, meaning: float, text: float) -> PersonaSearchHit:
        return cls(
            **_persona_fields(p),
            traits=[TraitView.of(t) for t in p.traits],
            score=round(score, 4),
            meaning=round(meaning, 4),
            text=round(text, 4),
        )


class ChannelView(View):
    """A channel as the persona writes for it: a built-in one, the persona's overlay of
    one (``overridden``), or the persona's own."""

    name: str
    min_words: int | None
    max_words: int | None
    tone: str
    paragraphs: bool | None
    lists: bool | None
    hashtags: bool | None
    emoji: bool | None
    call_to_action: bool | None
    instructions: str
    builtin: bool
    overridden: bool

    @classmethod
    def of(cls, c: Channel, *, builtin: bool, overridden: bool) -> ChannelView:
        return cls(
            name=c.name,
            min_words=c.min_words,
            max_words=c.max_words,
            tone=c.tone,
            paragraphs=c.paragraphs,
            lists=c.lists,
            hashtags=c.hashtags,
            emoji=c.emoji,
            call_to_action=c.call_to_action,
            instructions=c.instructions,
            builtin=builtin,
            overridden=overridden,
        )


def channels_of(p: Persona) -> list[ChannelView]:
    """Every channel the persona writes for, by name: built-in ones and its overlays."""
    own = {c.name for c in p.channels}
    return [
        ChannelView.of(c, builtin=name in BUILTIN, overridden=name in own and name in BUILTIN)
        for name, c in sorted(effective_channels(p).items())
    ]


class StudioPersona(PersonaView):
    """A persona as the studio shows it: its traits' sources and its channels."""

    traits: Sequence[StudioTraitView]
    channels: list[ChannelView]

    @classmethod
    def of(cls, p: Persona) -> StudioPersona:
        return cls(
            **_persona_fields(p),
            traits=[StudioTraitView.of(t) for t in p.traits],
            channels=channels_of(p),
        )


class PersonaPage(View):
    """A page of personas; with a search (``?q=``) each carries its rank."""

    items: list[RankedPersona | PersonaView]
    total: int
    offset: int
    limit: int


class PersonaSearch(View):
    query: str
    items: list[PersonaSearchHit]


class PersonaEmbedding(View):
    persona_id: uuid.UUID
    model: str
    dim: int
    vector: list[float]


class VersionView(View):
    """One version of a persona: when, by whom and why (no snapshot)."""

    version: int
    reason: str
    created_by: str
    created_at: Timestamp

    @classmethod
    def of(cls, v: PersonaVersion) -> VersionView:
        return cls(
            version=v.version, reason=v.reason, created_by=v.created_by, created_at=v.created_at
        )


class VersionSnapshot(VersionView):
    """A version with its snapshot, the full definition: for editors and admins only,
    since it holds the system prompt."""

    snapshot: dict[str, Any]

    @classmethod
    def of(cls, v: PersonaVersion) -> VersionSnapshot:
        return cls(
            version=v.version,
            reason=v.reason,
            created_by=v.created_by,
            created_at=v.created_at,
            snapshot=v.snapshot,
        )


class PersonaVersions(View):
    versions: list[VersionSnapshot | VersionView]

    @classmethod
    def of(cls, versions: Iterable[PersonaVersion], *, snapshots: bool) -> PersonaVersions:
        """``snapshots``: whether the caller may read them (an editor or admin)."""
        view = VersionSnapshot.of if snapshots else VersionView.of
        return cls(versions=[view(v) for v in versions])


class ChangeView(View):
    """One field that changed between two versions (``old``/``new`` null when it was
    added/removed)."""

    path: str
    kind: ChangeKind
    old: Any
    new: Any


class PersonaDiff(View):
    from_: int = Field(alias="from")
    to: int
    changes: list[ChangeView]

    @classmethod
    def of(cls, diff: VersionDiff) -> PersonaDiff:
        changes = [ChangeView(path=c.path, kind=c.kind, old=c.old, new=c.new) for c in diff.changes]
        return cls.model_validate({"from": diff.old, "to": diff.new, "changes": changes})


class AnalysisView(View):
    kind: str
    samples: int
    words: int
    confidence: float
    fingerprint: dict[str, Any]
    created_by: str
    created_at: Timestamp | None

    @classmethod
    def of(cls, a: Analysis) -> AnalysisView:
        return cls(
            kind=a.kind,
            samples=a.samples,
            words=a.words,
            confidence=a.confidence,
            fingerprint=a.fingerprint,
            created_by=a.created_by,
            created_at=a.created_at,
        )


class PersonaAnalyses(View):
    analyses: list[AnalysisView]


class ChannelList(View):
    channels: list[ChannelView]


class ChannelChange(View):
    """The persona's channels after a change, and the version the change made."""

    channels: list[ChannelView]
    version: int

    @classmethod
    def of(cls, p: Persona) -> ChannelChange:
        return cls(channels=channels_of(p), version=p.version)


class TemplateView(View):
    name: str
    title: str
    description: str
    traits: list[dict[str, Any]]
    modes: list[str]
    style: dict[str, Any]

    @classmethod
    def of(cls, t: Template) -> TemplateView:
        return cls(
            name=t.name,
            title=t.title,
            description=t.description,
            traits=[dict(x) for x in t.traits],
            modes=list(t.modes),
            style=dict(t.style),
        )


class TemplateList(View):
    templates: list[TemplateView]

    @classmethod
    def of(cls, templates: Sequence[Template]) -> TemplateList:
        return cls(templates=[TemplateView.of(t) for t in templates])


class GeneratedPersona(View):
    """A draft persona generated from writing, with the fingerprint it came from."""

    persona: StudioPersona
    archetype: str
    confidence: float
    fingerprint: dict[str, Any] = Field(description="the linguistic fingerprint")

    @classmethod
    def of(cls, made: Generated) -> GeneratedPersona:
        return cls(
            persona=StudioPersona.of(made.persona),
            archetype=made.draft.archetype,
            confidence=made.fingerprint.confidence,
            fingerprint=made.fingerprint.as_json(),
        )
