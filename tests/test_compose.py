"""The container set-up names exact image versions, never a moving tag."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXACT = re.compile(r"^[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.]+)?$")


def test_every_image_is_pinned() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = [s["image"] for s in compose["services"].values() if "image" in s]
    assert images
    for image in images:
        assert EXACT.match(image), f"{image}: pin an exact version"
    base = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert base and all(EXACT.match(b) for b in base), base
