"""The persona studio's operations, shared by the REST API and the CLI: generate a
draft persona from writing samples, set and remove channel overlays, apply templates,
compare two versions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from agents.traits.draft import Draft, archetype_of, draft_persona, slugify
from agents.traits.fingerprint import Fingerprint, FingerprintError, fingerprint
from personas import Actor, Persona, PersonaStore, to_definition
from personas.channels import BUILTIN, structure_of
from personas.definitions import RESERVED_SLUGS, ChannelDef, PersonaPatch, validated
from personas.diff import FieldChange, diff_snapshots
from personas.errors import InvalidPersonaChange
from personas.templates import TEMPLATES, template_patch
from personas.types import Analysis

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Generated:
    persona: Persona
    draft: Draft
    fingerprint: Fingerprint


MAX_SAMPLES = 200
MAX_SAMPLE_CHARS = 400_000
"""Writing samples a persona is generated from: at most ``MAX_SAMPLES`` of them and
``MAX_SAMPLE_CHARS`` characters in all (some 70,000 words, far more than a fingerprint
needs), for every interface (REST, CLI)."""


def check_samples(samples: Sequence[object]) -> None:
    """Raise :class:`FingerprintError` for more samples or characters than a persona is
    generated from."""
    if len(samples) > MAX_SAMPLES:
        raise FingerprintError(f"at most {MAX_SAMPLES} samples, not {len(samples)}")
    total = sum(len(s) for s in samples if isinstance(s, str))
    if total > MAX_SAMPLE_CHARS:
        raise FingerprintError(
            f"at most {MAX_SAMPLE_CHARS:,} characters of samples in all, not {total:,}"
        )


async def generate(
    personas: PersonaStore,
    samples: Sequence[object],
    actor: Actor,
    *,
    name: str | None = None,
    channel: str | None = None,
) -> Generated:
    """Fingerprint ``samples``, draft a persona from it and store it inactive, with the
    analysis and a first version "generated from N samples". Raises
    :class:`agents.traits.fingerprint.FingerprintError` for unusable samples."""
    check_samples(samples)
    # measuring writing is seconds of CPU for large samples: off the event loop, so the
    # server goes on answering meanwhile
    fp = await asyncio.to_thread(fingerprint, samples)
    texts = [s for s in samples if isinstance(s, str) and s.strip()]
    title = (name or "").strip() or f"{archetype_of(fp)} from writing"
    slug = await _free_slug(personas, slugify(title))
    draft = await asyncio.to_thread(draft_persona, fp, texts, name=title, slug=slug)
    data = dict(draft.definition)
    if channel is not None:
        data["channels"] = [await asyncio.to_thread(_channel_from_samples, channel, texts)]
    try:
        definition = validated(data)
    except ValueError as exc:
        raise InvalidPersonaChange(f"generated persona {title!r}: {exc}") from None
    analysis = Analysis(
        kind="writing",
        samples=fp.samples,
        words=fp.words,
        confidence=fp.confidence,
        fingerprint=fp.as_json() | {"archetype": draft.archetype},
    )
    reason = f"generated from {fp.samples} sample{'s' if fp.samples != 1 else ''}"
    persona = await personas.create(definition, actor, reason=reason, analysis=analysis)
    log.info("persona %s generated from %d samples (%d words)", persona.slug, fp.samples, fp.words)
    return Generated(persona, draft, fp)


async def _free_slug(personas: PersonaStore, base: str) -> str:
    slug, n = base, 1
    while slug in RESERVED_SLUGS or await personas.repository.find(slug) is not None:
        n += 1
        suffix = f"-{n}"
        slug = base[: 64 - len(suffix)].rstrip("-") + suffix
    return slug


def _channel_from_samples(name: str, texts: Sequence[str]) -> dict[str, object]:
    """An overlay for the channel the samples were written for: their length range and
    the structures most of them share."""
    base = BUILTIN.get(name)
    counts = sorted(len(t.split()) for t in texts)
    found = [structure_of(t) for t in texts]
    overlay: dict[str, object] = {
        "name": name,
        "min_words": max(1, counts[0]),
        "max_words": max(counts[-1], counts[0]),
        "tone": base.tone if base else "",
        "instructions": base.instructions if base else "",
    }
    for key in ("paragraphs", "lists", "hashtags", "emoji", "call_to_action"):
        share = sum(f[key] for f in found) / len(found)
        overlay[key] = True if share >= 0.5 else (getattr(base, key) if base else None)
    return overlay


async def set_channel(
    personas: PersonaStore, key: str, channel: ChannelDef, actor: Actor
) -> Persona:
    """Add the persona's overlay ``channel`` (or replace its overlay of that name)."""
    current = await personas.get(key)
    kept = [c for c in to_definition(current).channels if c.name != channel.name]
    patch = PersonaPatch(channels=(*kept, channel))
    return await personas.edit(current.id, patch, actor, reason=f"channel {channel.name} set")


async def remove_channel(personas: PersonaStore, key: str, name: str, actor: Actor) -> Persona:
    """Remove the persona's own overlay ``name`` (a built-in channel returns to its
    defaults)."""
    current = await personas.get(key)
    own = to_definition(current).channels
    if all(c.name != name for c in own):
        where = "a built-in channel with no overlay" if name in BUILTIN else "not a channel"
        raise InvalidPersonaChange(f"persona {current.slug!r}: {name!r} is {where} of it")
    patch = PersonaPatch(channels=tuple(c for c in own if c.name != name))
    return await personas.edit(current.id, patch, actor, reason=f"channel {name} removed")


async def apply_template(personas: PersonaStore, key: str, template: str, actor: Actor) -> Persona:
    """Apply a named template to a persona as a new version."""
    if template not in TEMPLATES:
        known = ", ".join(sorted(TEMPLATES))
        raise InvalidPersonaChange(f"unknown template {template!r}; one of {known}")
    current = await personas.get(key)
    patch = template_patch(to_definition(current), TEMPLATES[template])
    return await personas.edit(current.id, patch, actor, reason=f"template {template} applied")


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """What changed from version ``old`` to version ``new``, field by field."""

    old: int
    new: int
    changes: tuple[FieldChange, ...]


async def diff_versions(
    personas: PersonaStore, key: str, old: int, new: int | None = None
) -> VersionDiff:
    """Compare two versions of a persona; ``new`` None compares with the current one.
    Raises :class:`personas.VersionNotFound` for a version the persona never had."""
    before = await personas.version(key, old)
    if new is None:
        current = await personas.get(key)
        new_version, snapshot = current.version, to_definition(current).canonical()
    else:
        after = await personas.version(key, new)
        new_version, snapshot = after.version, after.snapshot
    return VersionDiff(
        before.version, new_version, tuple(diff_snapshots(before.snapshot, snapshot))
    )


def fingerprint_view(fp: Fingerprint) -> dict[str, object]:
    return asdict(fp)
