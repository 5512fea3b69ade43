"""Pure parts of the studio: channel overlays of the shipped library, version diffs,
templates, and the fingerprint's length-robust lexical diversity."""

from __future__ import annotations

from agents.traits.fingerprint import mtld
from personas.channels import BUILTIN, channel_lines
from personas.definitions import load_path, shipped_library
from personas.diff import diff_snapshots
from personas.templates import TEMPLATES, template_patch
from tests.personas.factory import definition


def test_some_library_personas_ship_channel_overlays() -> None:
    defs = {d.slug: d for d in load_path(shipped_library())}
    with_channels = {slug for slug, d in defs.items() if d.channels}
    assert {"career-mentor", "startup-advisor", "fitness-coach", "writing-editor"} <= with_channels
    mentor = defs["career-mentor"].channels[0]
    assert mentor.name == "linkedin" and mentor.hashtags and mentor.min_words == 120
    lines = channel_lines(BUILTIN["blog"])
    assert "Length: 300 to 900 words." in lines and "Do not use hashtags." in lines


def test_diff_names_what_changed_by_key_not_position() -> None:
    old = definition("tutor").canonical()
    new = definition(
        "tutor",
        domains=["teaching", "biology"],
        traits=[
            {"name": "patience", "type": "behaviour", "value": 0.7, "evolves": True},
            {"name": "openness", "type": "ocean", "value": 0.8},
        ],
    ).canonical()
    changes = [str(c) for c in diff_snapshots(old, new)]
    assert "~ traits.patience.value: 0.9 -> 0.7" in changes
    assert any(c.startswith("- traits.curiosity:") for c in changes)
    assert "~ domains: order -> reordered" in changes
    assert diff_snapshots(old, old) == []


def test_a_template_keeps_locked_traits() -> None:
    current = definition(
        "tutor", traits=[{"name": "agreeableness", "type": "ocean", "value": 0.2, "locked": True}]
    )
    patch = template_patch(current, TEMPLATES["gentle-tutor"])
    traits = {t.name: t.value for t in patch.traits or ()}
    assert traits["agreeableness"] == 0.2 and traits["patience"] == 0.9


def test_mtld_does_not_fall_with_length_like_the_plain_ratio() -> None:
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "birds",
        "sing",
        "in",
        "tall",
        "green",
        "trees",
        "and",
        "rivers",
        "run",
        "past",
        "old",
        "stone",
        "bridges",
        "under",
        "grey",
        "skies",
    ]
    short, long = words * 2, words * 20
    assert len(set(long)) / len(long) < len(set(short)) / len(short) / 5
    assert abs(mtld(long) - mtld(short)) / mtld(short) < 0.5
