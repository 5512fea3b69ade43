"""Properties of the persona definition loader: any document, valid or junk, YAML or JSON,
either parses into definitions that round-trip through ``canonical()`` or raises a
``DefinitionError`` naming its source — never any other exception."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personas import DefinitionError, PersonaDef
from personas.definitions import NAME_PATTERN, SLUG_PATTERN, parse_definitions
from personas.types import OCEAN_TRAITS

SOURCES = ("personas.yaml", "personas.json", "lib/x.yml")
FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# text that survives YAML and JSON unchanged and is not blank once stripped
_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Zs"))
_SPACES = st.sampled_from(["", " ", "  "])


def _text(max_size: int) -> st.SearchStrategy[str]:
    core = st.text(_CHARS, min_size=1, max_size=max(1, max_size - 4))
    return st.builds(lambda a, s, b: a + s + b, _SPACES, core, _SPACES).filter(
        lambda t: len(t.strip()) <= max_size
    )


def _maybe_text(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), _text(max_size))


_names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda n: n not in OCEAN_TRAITS)
_unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def persona_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid persona as a definitions file holds it."""
    persona_type = draw(st.sampled_from(["historical", "fictional", "synthetic"]))
    trait_names = draw(
        st.lists(st.one_of(_names, st.sampled_from(OCEAN_TRAITS)), max_size=6, unique=True)
    )
    traits = []
    for name in trait_names:
        flags = draw(st.sampled_from([(False, False), (True, False), (False, True)]))
        trait: dict[str, Any] = {
            "name": name,
            "value": draw(_unit),
            "type": "ocean"
            if name in OCEAN_TRAITS and draw(st.booleans())
            else draw(st.sampled_from(["behaviour", "skill", "quirk_2"])),
            "evolves": flags[0],
            "locked": flags[1],
        }
        if draw(st.booleans()):
            trait["description"] = draw(_maybe_text(80))
        traits.append(trait)
    modes = [
        {"mode": m, "enabled": draw(st.booleans())}
        for m in draw(
            st.lists(st.from_regex(NAME_PATTERN, fullmatch=True), max_size=4, unique=True)
        )
    ]
    enabled = [m["mode"] for m in modes if m["enabled"]]
    style: dict[str, Any] = {
        "humour_usage": draw(_unit),
        "temperature": draw(st.floats(0.0, 2.0, allow_nan=False)),
        "max_tokens": draw(st.integers(16, 8_192)),
        "emotional_style": draw(_text(60)),
        "default_mode": draw(st.sampled_from([None, *enabled])),
    }
    data: dict[str, Any] = {
        "slug": draw(st.from_regex(SLUG_PATTERN, fullmatch=True)),
        "name": draw(_text(120)),
        "description": draw(_text(300)),
        "role": draw(_maybe_text(60)),
        "system_prompt": draw(_maybe_text(300)),
        "domains": draw(
            st.lists(
                st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=20),
                max_size=5,
            )
        ),
        "persona_type": persona_type,
        "is_real": persona_type == "historical",
        "birth_date": draw(st.one_of(st.none(), st.dates(dt.date(1, 1, 1), dt.date(2100, 1, 1)))),
        "avatar_url": draw(st.one_of(st.none(), _text(100))),
        "active": draw(st.booleans()),
        "traits": traits,
        "beliefs": [{"text": t} for t in draw(st.lists(_text(100), max_size=3))],
        "modes": modes,
        "style": style,
    }
    optional = [
        k for k in data if k not in ("slug", "name", "description", "persona_type", "is_real")
    ]
    for key in draw(st.lists(st.sampled_from(optional), unique=True, max_size=4)):
        data.pop(key)
    if "modes" not in data:
        data.get("style", {}).pop("default_mode", None)
    return data


def _serialize(document: Any, source: str) -> str:
    if source.endswith(".json"):
        return json.dumps(document, default=str, ensure_ascii=False)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _check(text: str, source: str) -> tuple[PersonaDef, ...] | None:
    """Parse: definitions that round-trip, or a DefinitionError naming ``source``."""
    try:
        defs = parse_definitions(text, source=source)
    except DefinitionError as exc:
        assert exc.file == source
        assert str(exc).startswith(source)
        return None
    assert defs, "a file parses into at least one persona"
    for d in defs:
        canonical = d.canonical()
        again = PersonaDef.model_validate(canonical)
        # canonical() orders traits by name; everything else is kept as is
        assert again == d.model_copy(
            update={"traits": tuple(sorted(d.traits, key=lambda t: t.name))}
        )
        assert again.canonical() == canonical
        assert json.loads(json.dumps(canonical)) == canonical
    return defs


@FAST
@given(
    st.lists(persona_dicts(), min_size=1, max_size=3, unique_by=lambda d: d["slug"]),
    st.sampled_from(SOURCES),
    st.booleans(),
)
def test_valid_personas_always_parse_and_round_trip(
    personas: list[dict[str, Any]], source: str, wrapped: bool
) -> None:
    document: Any = {"personas": personas} if wrapped or len(personas) > 1 else personas[0]
    defs = _check(_serialize(document, source), source)
    assert defs is not None, "a valid persona was refused"
    assert [d.slug for d in defs] == [p["slug"] for p in personas]
    for d, p in zip(defs, personas, strict=True):
        assert d.name == p["name"].strip()
        assert {t.name for t in d.traits} == {t["name"] for t in p.get("traits", [])}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)
_field_names = st.sampled_from(
    [
        "slug",
        "name",
        "description",
        "role",
        "system_prompt",
        "domains",
        "is_real",
        "persona_type",
        "birth_date",
        "avatar_url",
        "active",
        "protected",
        "traits",
        "beliefs",
        "modes",
        "style",
        "personas",
        "extra",
    ]
)


@st.composite
def damaged_documents(draw: st.DrawFn) -> Any:
    """A valid persona with fields replaced by junk, removed, or nested in junk."""
    data: Any = draw(persona_dicts())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "drop", "trait", "wrap"]))
        if action == "set":
            data[draw(_field_names)] = draw(_json_values)
        elif action == "drop" and data:
            data.pop(draw(st.sampled_from(sorted(data))))
        elif action == "trait":
            data["traits"] = [*data.get("traits", []), draw(_json_values)]
        elif action == "wrap":
            data = {"personas": draw(st.sampled_from([[data, data], data, [data, 1], []]))}
            break
    return data


@FAST
@given(damaged_documents(), st.sampled_from(SOURCES))
def test_damaged_personas_parse_or_name_the_source(document: Any, source: str) -> None:
    _check(_serialize(document, source), source)


@FAST
@given(_json_values, st.sampled_from(SOURCES))
def test_any_structure_parses_or_names_the_source(document: Any, source: str) -> None:
    try:
        text = _serialize(document, source)
    except ValueError:  # NaN and the like where the serializer refuses
        return
    _check(text, source)


@FAST
@given(st.text(max_size=300), st.sampled_from(SOURCES))
def test_any_text_parses_or_names_the_source(text: str, source: str) -> None:
    _check(text, source)


_YAMLISH = st.sampled_from(
    [
        "personas:",
        "- ",
        "slug: ",
        "name: x",
        "{",
        "}",
        "[",
        "]",
        ": ",
        "&a ",
        "*a",
        "!!python/object:os.system",
        "!!binary ",
        "? ",
        "|\n  ",
        ">-\n",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "\t",
        "\n",
        "  ",
        "'",
        '"',
        "~",
        "0x1F",
        "1e400",
        ".nan",
        "2001-12-14",
        "<<: *a",
        "#",
        "\\u0000",
        "\x00",
        "\ufeff",
    ]
)


@FAST
@given(st.lists(st.one_of(_YAMLISH, st.text(max_size=8)), max_size=40), st.sampled_from(SOURCES))
def test_yaml_shaped_junk_parses_or_names_the_source(parts: list[str], source: str) -> None:
    _check("".join(parts), source)


@pytest.mark.parametrize("source", ["personas.yaml", "personas.json"])
@pytest.mark.parametrize("depth", [100, 1_000, 10_000])
@pytest.mark.parametrize("shape", ["[", "{a: ", '{"a": ', "- "])
def test_deep_nesting_parses_or_names_the_source(source: str, depth: int, shape: str) -> None:
    closing = {"[": "]", "{a: ": "}", '{"a": ': "}", "- ": ""}[shape]
    if shape == "- ":
        text = "".join("  " * i + "- \n" for i in range(min(depth, 2_000)))
    else:
        text = shape * depth + "1" + closing * depth
    _check(text, source)
