"""Character cards as PNG files, the form role-play tools trade them in: the card's JSON,
base64-encoded, in the picture's ``tEXt`` chunks (``chara`` for V2 readers, and ``ccv3``
too for a V3 card).

The picture is the persona's own when it has one (the image of the PNG card it was
imported from, kept without the card's text), else a generated one: the persona's
initials on a colour of its own, as the web page draws its badge."""

from __future__ import annotations

import base64
import colorsys
import json
import struct
import unicodedata
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from personas.cards import CardError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = frozenset({"chara", "ccv3"})
"""Text chunks that carry a card (any case), dropped from a kept picture."""
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
PICTURE_SIZE = (400, 600)
"""Width and height of a generated picture: the 2:3 portrait cards are drawn in."""


def png_chunks(raw: bytes, source: str) -> Iterator[tuple[bytes, bytes]]:
    """Each chunk of a PNG as ``(kind, data)``, up to and with ``IEND``."""
    if not raw.startswith(PNG_SIGNATURE):
        raise CardError(source, "not a PNG file")
    at = len(PNG_SIGNATURE)
    while at + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[at : at + 8])
        data = raw[at + 8 : at + 8 + length]
        if len(data) < length:
            raise CardError(source, "a truncated PNG")
        at += 12 + length
        yield kind, data
        if kind == b"IEND":
            return
    raise CardError(source, "a truncated PNG (no IEND chunk)")


def card_picture(raw: bytes, source: str) -> bytes:
    """The picture of a PNG card: the same image without the chunks that carry the card."""
    kept = [(kind, data) for kind, data in png_chunks(raw, source) if not _carries_card(kind, data)]
    if not kept or kept[0][0] != b"IHDR":
        raise CardError(source, "a PNG without its IHDR chunk first")
    return PNG_SIGNATURE + b"".join(_chunk(kind, data) for kind, data in kept)


def _carries_card(kind: bytes, data: bytes) -> bool:
    if kind not in _TEXT_CHUNKS:
        return False
    keyword = data.partition(b"\x00")[0].decode("latin-1").lower()
    return keyword in CARD_KEYWORDS or keyword.startswith("chara-ext-asset_")


def card_png(picture: bytes, cards: Mapping[str, Mapping[str, Any]]) -> bytes:
    """``picture`` (a PNG) with each card of ``cards`` (by keyword: ``chara``,
    ``ccv3``) in a ``tEXt`` chunk before its end, replacing any card it held."""
    chunks = [(k, d) for k, d in png_chunks(picture, "picture") if not _carries_card(k, d)]
    texts = [
        (b"tEXt", keyword.encode("latin-1") + b"\x00" + _encoded(card))
        for keyword, card in cards.items()
    ]
    body = chunks[:-1] + texts + chunks[-1:]  # IEND stays last
    return PNG_SIGNATURE + b"".join(_chunk(kind, data) for kind, data in body)


def _encoded(card: Mapping[str, Any]) -> bytes:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# ---- a generated picture --------------------------------------------------------------


def generated_picture(name: str, seed: str) -> bytes:
    """A portrait PNG: ``name``'s initials on a colour fixed by ``seed`` (the persona's
    id, as the web page colours its badge)."""
    width, height = PICTURE_SIZE
    h = hue(seed or name) / 360
    background = _rgb(h, 0.88, 0.70)
    ink = _rgb(h, 0.28, 0.55)
    glyphs = [_glyph(c) for c in initials(name)]
    scale = 24
    glyph_w, glyph_h, gap = 5 * scale, 7 * scale, scale
    text_w = len(glyphs) * glyph_w + (len(glyphs) - 1) * gap
    left, top = (width - text_w) // 2, (height - glyph_h) // 2
    plain = b"\x00" + background * width
    rows = []
    for y in range(height):
        row_in_glyph = (y - top) // scale
        if not 0 <= y - top < glyph_h:
            rows.append(plain)
            continue
        pixels = bytearray(background * width)
        for i, glyph in enumerate(glyphs):
            x0 = left + i * (glyph_w + gap)
            for column, cell in enumerate(glyph[row_in_glyph]):
                if cell == "#":
                    start = 3 * (x0 + column * scale)
                    pixels[start : start + 3 * scale] = ink * scale
        rows.append(b"\x00" + bytes(pixels))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _chunk(b"IEND", b"")
    )


def hue(text: str) -> int:
    """The web page's hue of ``text`` (``dom.js``), over its UTF-16 code units' first."""
    n = 0
    for ch in text:
        code = ord(ch)
        unit = 0xD800 + ((code - 0x10000) >> 10) if code > 0xFFFF else code
        n = (n * 31 + unit) % 360
    return n


def initials(name: str) -> str:
    """The web page's initials: the first letters of the first and last words (the
    first two letters of a single word), upper-cased."""
    words = name.split() or ["?"]
    letters = words[0][0] + words[-1][0] if len(words) > 1 else words[0][:2]
    return letters.upper()


def _glyph(char: str) -> tuple[str, ...]:
    """The font's glyph for ``char``, an accented letter drawn as its base letter."""
    folded = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return _GLYPHS.get(folded[:1], _GLYPHS["?"])


def _rgb(h: float, lightness: float, saturation: float) -> bytes:
    r, g, b = colorsys.hls_to_rgb(h, lightness, saturation)
    return bytes(round(v * 255) for v in (r, g, b))


def _font(rows: str) -> dict[str, tuple[str, ...]]:
    glyphs = {}
    for line in rows.strip().splitlines():
        char, cells = line.split(" ", 1)
        glyphs[char] = tuple(cells.split())
    return glyphs


# 5x7 capitals and digits: a glyph is seven rows of five cells, '#' inked
_GLYPHS = _font("""
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ####. #...# #...# #...# #...# #...# ####.
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ####. ....# ....# .###. ....# ....# ####.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
? .###. #...# ....# ...#. ..#.. ..... ..#..
""")
