"""Character cards written as PNG pictures and with the V1 fields at the top: round trips
of a card with the field set a SillyTavern export has (its own fields at the top level,
``data`` with the V2 fields and SillyTavern's extensions), and the generated picture."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from personas.card_png import (
    PICTURE_SIZE,
    card_picture,
    card_png,
    generated_picture,
    hue,
    initials,
    png_chunks,
)
from personas.cards import V1_FIELDS, export_card, read_card_file
from tests.personas.test_cards import png_with, text_chunk

# The fields of a V2 card as SillyTavern exports one (the content is this test's own):
# V1 fields and SillyTavern's at the top level, the card in `data`.
DATA: dict[str, Any] = {
    "name": "Wren Alder",
    "description": "{{char}} keeps the lighthouse on Gull Rock and logs every ship.",
    "personality": "patient, wry, observant",
    "scenario": "A storm has stranded {{user}} at the lighthouse for the night.",
    "first_mes": "*{{char}} sets down the lamp.* You picked a fine night to visit.",
    "mes_example": "<START>\n{{user}}: Is it always this loud?\n{{char}}: Only when it matters.",
    "creator_notes": "Slow, cosy mystery.",
    "system_prompt": "",
    "post_history_instructions": "",
    "tags": ["mystery", "cosy"],
    "creator": "card-author",
    "character_version": "1.0",
    "alternate_greetings": ["The kettle's on. Sit."],
    "extensions": {
        "talkativeness": "0.5",
        "fav": False,
        "world": "Gull Rock",
        "depth_prompt": {"prompt": "", "depth": 4, "role": "system"},
    },
    "group_only_greetings": [],
    "character_book": {
        "name": "Gull Rock",
        "entries": [
            {
                "keys": ["keeper", "log"],
                "content": "The log has a page torn out from the night of the wreck.",
                "enabled": True,
                "insertion_order": 100,
                "extensions": {"position": 0},
            }
        ],
    },
}
SILLYTAVERN_CARD: dict[str, Any] = {
    **{name: DATA[name] for name in V1_FIELDS},
    "creatorcomment": DATA["creator_notes"],
    "avatar": "none",
    "talkativeness": "0.5",
    "fav": False,
    "tags": DATA["tags"],
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": DATA,
    "create_date": "2025-3-14 @15h 09m 26s 535ms",
}


def texts(raw: bytes) -> dict[str, dict[str, Any]]:
    """The cards a PNG carries, by chunk keyword."""
    found = {}
    for kind, data in png_chunks(raw, "test"):
        if kind == b"tEXt":
            keyword, _, value = data.partition(b"\x00")
            found[keyword.decode()] = json.loads(base64.b64decode(value))
    return found


def image_chunks(raw: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, d) for k, d in png_chunks(raw, "test") if k not in (b"tEXt", b"zTXt", b"iTXt")]


def test_a_real_cards_fields_round_trip_through_a_png(tmp_path: Path) -> None:
    original = png_with([(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))])
    source = tmp_path / "wren.png"
    source.write_bytes(
        png_with(
            [(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)), text_chunk("chara", SILLYTAVERN_CARD)]
        )
    )
    definition, card = read_card_file(source)
    assert definition.name == "Wren Alder" and dict(card.data) == DATA

    picture = card_picture(source.read_bytes(), str(source))
    assert picture == original, "the picture is the image without the card"
    exported = export_card(definition, card, "chara_card_v2")
    out = tmp_path / "out.png"
    out.write_bytes(card_png(picture, {"chara": exported}))

    raw = out.read_bytes()
    assert image_chunks(raw) == image_chunks(original), "the same picture"
    carried = texts(raw)
    assert list(carried) == ["chara"]
    doc = carried["chara"]
    assert doc["spec"] == "chara_card_v2" and doc["spec_version"] == "2.0"
    for name in V1_FIELDS:  # V1 readers find the card at the top level
        assert doc[name] == DATA[name], name
    data = doc["data"]
    for key, value in DATA.items():
        if key != "extensions":
            assert data[key] == value, key
    extensions = {k: v for k, v in data["extensions"].items() if k != "personae"}
    assert extensions == DATA["extensions"]
    assert data["extensions"]["personae"]["slug"] == "wren-alder"

    again, card_again = read_card_file(out)
    assert again == definition and dict(card_again.data) == data
    # written again over the exported PNG: one card, not two
    twice = card_png(raw, {"chara": exported})
    assert list(texts(twice)) == ["chara"] and image_chunks(twice) == image_chunks(original)


def test_a_v3_png_carries_the_v2_card_for_older_readers(tmp_path: Path) -> None:
    source = tmp_path / "wren.json"
    source.write_text(json.dumps(SILLYTAVERN_CARD))
    definition, card = read_card_file(source)
    v3 = export_card(definition, card, "chara_card_v3")
    v2 = export_card(definition, card, "chara_card_v2")
    assert "first_mes" not in v3 and v2["first_mes"] == DATA["first_mes"]
    out = tmp_path / "wren.png"
    out.write_bytes(card_png(png_with([]), {"chara": v2, "ccv3": v3}))
    assert set(texts(out.read_bytes())) == {"chara", "ccv3"}
    read, read_card = read_card_file(out)
    assert read_card.spec == "chara_card_v3" and read == definition


def test_a_json_export_of_an_edited_persona_keeps_v1_fields_in_step(tmp_path: Path) -> None:
    source = tmp_path / "wren.json"
    source.write_text(json.dumps(SILLYTAVERN_CARD))
    definition, card = read_card_file(source)
    renamed = definition.model_copy(update={"name": "Wren Alder-Moss"})
    doc = export_card(renamed, card, "chara_card_v2")
    assert doc["name"] == doc["data"]["name"] == "Wren Alder-Moss"
    assert doc["scenario"] == DATA["scenario"]
    unchanged = copy.deepcopy(SILLYTAVERN_CARD)
    assert json.loads(source.read_text()) == unchanged, "the source is only read"


def test_a_generated_picture_shows_the_initials_on_the_personas_colour() -> None:
    raw = generated_picture("Wren Alder", "6f1c0a52-8f8e-4c55-9d4e-1b1f0c6a2b11")
    chunks = dict(png_chunks(raw, "generated"))
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height) == PICTURE_SIZE and (depth, colour) == (8, 2)
    pixels = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    assert len(pixels) == height * stride
    rows = [pixels[y * stride + 1 : (y + 1) * stride] for y in range(height)]
    corner = rows[0][:3]
    colours = {bytes(row[x : x + 3]) for row in rows for x in range(0, len(row), 3)}
    assert colours - {corner}, "the initials are drawn"
    assert len(colours) == 2
    middle = rows[height // 2]
    inked = [x // 3 for x in range(0, len(middle), 3) if middle[x : x + 3] != corner]
    assert inked and abs(inked[0] - (width - 1 - inked[-1])) <= 24, "centred"
    assert inked[-1] - inked[0] > width // 2, "large enough to read as a thumbnail"
    assert initials("Wren Alder") == "WA" and initials("élodie") == "ÉL"
    assert len(dict(png_chunks(generated_picture("Élodie Ødegaard", "x"), "x"))) == 3
    assert hue("6f1c0a52") == hue("6f1c0a52") != hue("6f1c0a53")
    other = generated_picture("Wren Alder", "another-id")
    assert dict(png_chunks(other, "x"))[b"IDAT"] != chunks[b"IDAT"], "its colour is its own"
