"""The package builds without warnings (a fresh ``make test`` installs it) and carries
its data files: the web pages, the persona library and the migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "agents", "memory", "personas", "socket_server", "migrations")


def test_the_wheel_builds_quietly_with_its_data_files(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",  # offline: the setuptools of this environment
            "--verbose",
            "--wheel-dir",
            str(tmp_path / "wheel"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    said = built.stdout + built.stderr
    warnings = [
        line.strip()
        for line in said.splitlines()
        if "Warning" in line or "absent from the `packages`" in line or "deprecated" in line
    ]
    assert warnings == [], "\n".join(warnings)
    (wheel,) = (tmp_path / "wheel").glob("personae-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for static in (REPO / "socket_server" / "static").iterdir():
        assert f"socket_server/static/{static.name}" in names
    assert "personas/library/albert-einstein.yaml" in names
    migrations = {p.name for p in (REPO / "migrations").glob("*.sql")}
    assert migrations and {f"migrations/{m}" for m in migrations} <= names
