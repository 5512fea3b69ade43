"""Character cards read from real JSON, PNG and CHARX files this test writes."""

from __future__ import annotations

import base64
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from personas.cards import (
    MAX_CARD_BYTES,
    CardError,
    card_prompt,
    export_card,
    looks_like_card_file,
    read_card_file,
)


def card_data(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Captain Mira Vell",
        "description": "{{char}} commands the airship Kestrel over the cloud sea.",
        "personality": "gruff, loyal, dry-witted",
        "scenario": "{{user}} has just signed on as the Kestrel's navigator.",
        "first_mes": "Welcome aboard, {{user}}. Mind the rigging.",
        "alternate_greetings": ["You're late, navigator.", "  "],
        "mes_example": "<START>\n{{user}}: Where are we headed?\n{{char}}: Wherever the wind pays.",
        "creator_notes": "Best with slow-burn adventure.",
        "system_prompt": "{{original}} Stay in the age of sail and steam.",
        "post_history_instructions": "Never break character as {{char}}.",
        "tags": ["Adventure", "Airship", "adventure"],
        "creator": "tester",
        "character_version": "1.2",
        "character_book": {
            "name": "Kestrel lore",
            "entries": [
                {
                    "keys": ["storm", "Maelstrom"],
                    "content": "The Maelstrom took Mira's first ship.",
                    "enabled": True,
                    "insertion_order": 2,
                },
                {
                    "keys": ["engine"],
                    "content": "The engine is older than the captain.",
                    "enabled": False,
                    "insertion_order": 1,
                },
                {
                    "keys": [],
                    "content": "Mira never drinks before landfall.",
                    "constant": True,
                    "insertion_order": 3,
                },
            ],
        },
        "extensions": {"depth_prompt": {"depth": 4, "prompt": "x"}, "fav": True},
        "some_future_field": {"kept": [1, 2, 3]},
    }
    data.update(extra)
    return data


def v2(**extra: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": card_data(**extra)}


def png_with(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A valid 1x1 PNG with the given extra chunks before its image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    body = chunk(b"IHDR", header)
    for kind, data in chunks:
        body += chunk(kind, data)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def text_chunk(keyword: str, doc: dict[str, Any]) -> tuple[bytes, bytes]:
    encoded = base64.b64encode(json.dumps(doc).encode("utf-8"))
    return b"tEXt", keyword.encode("latin-1") + b"\x00" + encoded


def test_a_json_card_maps_to_a_persona_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "mira.json"
    path.write_text(json.dumps(v2()), encoding="utf-8")
    assert looks_like_card_file(path)
    definition, card = read_card_file(path)
    assert definition.slug == "captain-mira-vell" and definition.name == "Captain Mira Vell"
    assert definition.description.startswith("{{char}} commands the airship")
    assert definition.system_prompt == "Stay in the age of sail and steam."
    assert definition.domains == ("adventure", "airship")
    assert definition.persona_type == "fictional"
    assert card.greetings == (
        "Welcome aboard, {{user}}. Mind the rigging.",
        "You're late, navigator.",
    )
    assert card.data["some_future_field"] == {"kept": [1, 2, 3]}
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({k: v for k, v in card_data().items() if k != "character_book"}))
    assert looks_like_card_file(v1)
    assert read_card_file(v1) == (definition, read_card_file(v1)[1])
    assert read_card_file(v1)[1].spec == "chara_card_v2"
    definitions = tmp_path / "defs.json"
    definitions.write_text(json.dumps({"personas": []}))
    assert not looks_like_card_file(definitions)


def test_png_cards_prefer_v3_and_charx_reads_card_json(tmp_path: Path) -> None:
    v3 = {"spec": "chara_card_v3", "spec_version": "3.0", "data": card_data(name="Mira Three")}
    png = tmp_path / "mira.png"
    png.write_bytes(png_with([text_chunk("chara", v2()), text_chunk("ccv3", v3)]))
    definition, card = read_card_file(png)
    assert card.spec == "chara_card_v3" and definition.name == "Mira Three"
    only_v2 = tmp_path / "old.png"
    only_v2.write_bytes(png_with([text_chunk("chara", v2())]))
    assert read_card_file(only_v2)[1].spec == "chara_card_v2"

    charx = tmp_path / "mira.charx"
    with zipfile.ZipFile(charx, "w") as archive:
        archive.writestr("card.json", json.dumps(v3))
        archive.writestr("assets/icon/main.png", png_with([]))
    assert read_card_file(charx)[0].name == "Mira Three"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("plain.png", png_with([(b"tEXt", b"Comment\x00hello")]), "no character card in this PNG"),
        ("bad64.png", png_with([(b"tEXt", b"chara\x00%%%not base64")]), "not valid base64"),
        (
            "badjson.png",
            png_with([(b"tEXt", b"chara\x00" + base64.b64encode(b"{nope"))]),
            "not valid JSON",
        ),
        ("fake.png", b"GIF89a not a png", "not a PNG file"),
        ("empty.charx", b"PK\x05\x06" + b"\x00" * 18, "no card.json in this CHARX"),
        ("bad.json", b"[1, 2]", "a card is a JSON object"),
        ("nameless.json", json.dumps({"spec": "chara_card_v2", "data": {}}).encode(), "no name"),
        (
            "spec.json",
            json.dumps({"spec": "chara_card_v9", "data": {}}).encode(),
            "unknown card spec",
        ),
        (
            "big.json",
            json.dumps(v2(description="x" * (MAX_CARD_BYTES + 1))).encode(),
            "larger than",
        ),
    ],
)
def test_bad_card_files_get_errors_naming_them(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CardError) as failed:
        read_card_file(path)
    assert str(failed.value).startswith(f"{path}: ")
    assert message in str(failed.value)


def test_the_prompt_gets_scenario_examples_and_lore_whose_keys_appear(tmp_path: Path) -> None:
    path = tmp_path / "mira.json"
    path.write_text(json.dumps(v2()))
    _, card = read_card_file(path)
    quiet = card_prompt(card, persona_name="Mira", user_name="Uma", recent=["Hello there"])
    text = "\n".join(quiet.sections)
    assert "Scenario: Uma has just signed on" in text
    assert "Personality: gruff, loyal, dry-witted" in text
    assert "Uma: Where are we headed?\nMira: Wherever the wind pays." in text
    assert "Mira never drinks before landfall." in text  # constant
    assert "Maelstrom" not in text
    assert quiet.closing == ("Never break character as Mira.",)
    stormy = card_prompt(
        card, persona_name="Mira", user_name="Uma", recent=["Tell me of the STORM", "engine?"]
    )
    text = "\n".join(stormy.sections)
    assert "The Maelstrom took Mira's first ship." in text  # keys match without case
    assert "The engine is older" not in text  # disabled


def test_export_round_trips_the_card(tmp_path: Path) -> None:
    original = v2()
    path = tmp_path / "mira.json"
    path.write_text(json.dumps(original))
    definition, card = read_card_file(path)
    exported = export_card(definition, card, "chara_card_v2")
    assert exported["spec"] == "chara_card_v2" and exported["spec_version"] == "2.0"
    data = exported["data"]
    for key, value in original["data"].items():
        if key != "extensions":
            assert data[key] == value, key
    assert data["extensions"]["depth_prompt"] == original["data"]["extensions"]["depth_prompt"]
    again = tmp_path / "again.json"
    again.write_text(json.dumps(export_card(definition, card, "chara_card_v3")))
    definition2, card2 = read_card_file(again)
    assert definition2 == definition and card2.spec == "chara_card_v3"
    assert card2.lore == card.lore
    # edited in another tool after export: the card's own fields win over the stored ones
    edited = json.loads(again.read_text())
    edited["data"]["description"] = "A new description."
    again.write_text(json.dumps(edited))
    assert read_card_file(again)[0].description == "A new description."


def test_compressed_text_chunks_are_inflated_within_a_bound(tmp_path: Path) -> None:
    """A PNG of many small compressed text chunks that each inflate to megabytes: only
    the card's own keywords are inflated, and no further than a card can be."""
    import tracemalloc

    bomb = zlib.compress(b"\x00" * (8 * 1024**2), 9)
    chunks = [(b"zTXt", f"junk{i}".encode() + b"\x00\x00" + bomb) for i in range(40)]
    chunks += [(b"iTXt", f"more{i}".encode() + b"\x00\x01\x00\x00\x00" + bomb) for i in range(20)]
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with([*chunks, text_chunk("chara", v2())]))
    assert path.stat().st_size < 1024**2
    tracemalloc.start()
    try:
        definition, _ = read_card_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert definition.name == "Captain Mira Vell"
    assert peak < 48 * 1024**2, f"{peak / 1024**2:.0f} MiB held while reading"
    for kind, head in ((b"zTXt", b"chara\x00\x00"), (b"iTXt", b"ccv3\x00\x01\x00\x00\x00")):
        refused = tmp_path / f"big-{kind.decode()}.png"
        refused.write_bytes(png_with([(kind, head + bomb)]))
        with pytest.raises(CardError, match="larger than 4 MiB"):
            read_card_file(refused)
