from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from personas import Actor, DefinitionError, PersonaStore
from personas.definitions import load_path, parse_definitions, shipped_library

ADMIN = Actor("cli", is_admin=True)


async def _import(store: PersonaStore, path: Path) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for d in load_path(path):
        outcomes[(await store.upsert(d, ADMIN)).outcome] += 1
    return outcomes


def test_shipped_library_is_valid_and_varied() -> None:
    defs = load_path(shipped_library())
    assert len(defs) >= 35
    kinds = Counter(d.persona_type for d in defs)
    assert kinds["historical"] >= 10 and kinds["synthetic"] + kinds["fictional"] >= 10
    modes = {m.mode for d in defs for m in d.modes}
    assert {"educator", "critic", "mentor", "debater"} <= modes
    for d in defs:
        assert {t.name for t in d.traits if t.type == "ocean"} == {
            "openness",
            "conscientiousness",
            "extraversion",
            "agreeableness",
            "neuroticism",
        }, d.slug
        assert d.beliefs, d.slug
        if d.is_real:
            assert all(b.source for b in d.beliefs), f"{d.slug}: real figures cite sources"
    einstein = next(d for d in defs if d.slug == "albert-einstein")
    assert "physics" in einstein.domains


async def test_import_is_idempotent(store: PersonaStore) -> None:
    first = await _import(store, shipped_library())
    assert first["created"] >= 35 and first["updated"] == first["unchanged"] == 0
    second = await _import(store, shipped_library())
    assert second == Counter({"unchanged": first["created"]})
    async with store.repository._pool.connection() as conn:
        cur = await conn.execute("SELECT count(*), max(version) FROM persona_versions")
        assert await cur.fetchone() == (first["created"], 1)
    hits = await store.search("physics")
    assert "albert-einstein" in [h.persona.slug for h in hits]


async def test_import_updates_changed_persona(store: PersonaStore, tmp_path: Path) -> None:
    src = tmp_path / "one.yaml"
    src.write_text(_tutor("Explains fractions."), encoding="utf-8")
    assert await _import(store, src) == Counter({"created": 1})
    src.write_text(_tutor("Explains fractions and decimals."), encoding="utf-8")
    assert await _import(store, src) == Counter({"updated": 1})
    persona = await store.get("fraction-tutor")
    assert persona.version == 2 and persona.description == "Explains fractions and decimals."


def _tutor(description: str, extra: str = "") -> str:
    return f"""personas:
  - slug: fraction-tutor
    name: Fraction Tutor
    description: {description}
    traits:
      - {{name: patience, value: 0.9}}
{extra}"""


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (
            _tutor("x").replace("0.9", "1.7"),
            "a.yaml",
            "persona 'fraction-tutor', field 'traits.0.value'",
        ),
        (_tutor("x", "    colour: blue\n"), "a.yaml", "field 'colour'"),
        ("personas: [{slug: Bad Slug, name: n, description: d}]", "a.yaml", "field 'slug'"),
        ("personas:\n  - slug: ok-slug\n    name: n\n", "b.yaml", "field 'description'"),
        ("{{{not yaml", "c.yaml", "c.yaml: not valid YAML/JSON"),
        ('{"personas": 3}', "d.json", "d.json"),
        ("- just\n- a list\n", "e.yaml", "expected a mapping"),
    ],
)
def test_invalid_definitions_name_file_persona_and_field(
    text: str, name: str, expected: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definitions(text, source=name)
    assert expected in str(info.value)
    assert name in str(info.value)


def test_semantic_rules_are_checked() -> None:
    base = "personas:\n  - slug: x-y\n    name: n\n    description: d\n"
    with pytest.raises(DefinitionError, match="ocean trait must be one of"):
        parse_definitions(
            base + "    traits: [{name: grumpiness, type: ocean, value: 0.5}]\n", source="f"
        )
    with pytest.raises(DefinitionError, match="trait defined twice"):
        parse_definitions(
            base + "    traits: [{name: wit, value: 0.5}, {name: wit, value: 0.2}]\n", source="f"
        )
    with pytest.raises(DefinitionError, match="default_mode"):
        parse_definitions(base + "    style: {default_mode: critic}\n", source="f")
    with pytest.raises(DefinitionError, match="is_real"):
        parse_definitions(base + "    is_real: true\n", source="f")


async def test_invalid_file_in_a_folder_writes_nothing(store: PersonaStore, tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text(_tutor("Fine."), encoding="utf-8")
    (tmp_path / "b-bad.yaml").write_text(
        _tutor("Fine.").replace("fraction-tutor", "bad-tutor").replace("0.9", "-1"),
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError, match="b-bad.yaml.*'bad-tutor'.*traits.0.value"):
        await _import(store, tmp_path)
    assert (await store.list()).total == 0


def test_duplicate_slug_across_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_tutor("One."), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(_tutor("Two."), encoding="utf-8")
    with pytest.raises(DefinitionError, match="also defined in a.yaml"):
        load_path(tmp_path)
