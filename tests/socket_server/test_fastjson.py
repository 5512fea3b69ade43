"""The Socket.IO JSON module: orjson's speed with python-engineio's own acceptance."""

from __future__ import annotations

import json
import math

import pytest

from socket_server import fastjson


@pytest.mark.parametrize(
    "text",
    [
        '{"a":[1,2.5,"é",null,true]}',
        "1" * 30,  # past 64 bits: orjson would read a float
        "-" + "9" * 25,
        '"\\ud800"',  # a lone surrogate orjson refuses
        '{"n":"1234567890123456789012"}',
    ],
)
def test_reads_what_the_standard_module_reads(text: str) -> None:
    assert fastjson.loads(text) == json.loads(text)
    assert type(fastjson.loads(text)) is type(json.loads(text))


def test_nan_literals_are_read_as_before() -> None:
    assert math.isnan(fastjson.loads("[NaN]")[0])


@pytest.mark.parametrize("text", ["1" * 101, "{", "", "[1,]"])
def test_refuses_what_engineio_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_writes_compact_json_and_falls_back_where_orjson_refuses() -> None:
    assert fastjson.dumps({"a": [1, "é"]}, separators=(",", ":")) == '{"a":[1,"é"]}'
    assert json.loads(fastjson.dumps({"s": "x\ud800"})) == {"s": "x\ud800"}
    assert json.loads(fastjson.dumps({1: 2**70})) == {"1": 2**70}
