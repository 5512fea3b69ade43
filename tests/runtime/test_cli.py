"""The `personae` command line, run as a real subprocess against the test database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_import_search_show_export_round_trip(cli: Any, tmp_path: Path) -> None:
    first = cli("personas", "import")
    assert "created" in first.stdout and "0 unchanged" in first.stdout
    second = cli("personas", "import")
    assert " 0 created, 0 updated" in second.stdout
    # stderr is a pipe here, as when it goes to a log file: no progress bar fills it
    assert "importing" not in second.stderr and "\r" not in second.stderr, second.stderr

    found = cli("personas", "search", "physics").stdout
    assert "albert-einstein" in found.splitlines()[0]

    shown = json.loads(cli("personas", "show", "albert-einstein", "--json").stdout)
    assert shown["name"] == "Albert Einstein" and shown["version"] == 1
    assert any(t["inherited"] for t in shown["effective_traits"])

    listed = json.loads(cli("personas", "list", "--type", "historical", "--json").stdout)
    assert len(listed) >= 10 and all(p["persona_type"] == "historical" for p in listed)

    out = tmp_path / "export.yaml"
    cli("personas", "export", "albert-einstein", "socratic-tutor", "-o", str(out))
    assert "albert-einstein" in out.read_text() and "socratic-tutor" in out.read_text()
    again = cli("personas", "import", str(out))
    assert "2 unchanged" in again.stdout, "an export imports back unchanged"


def test_errors_are_one_clear_line(cli: Any, tmp_path: Path) -> None:
    missing = cli("personas", "show", "no-such-persona", ok=False)
    assert missing.returncode == 1
    assert "persona 'no-such-persona' not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("personas: [{slug: ok-one, name: n, description: d, traits: 7}]")
    failed = cli("personas", "import", str(bad), ok=False)
    assert failed.returncode == 1 and "bad.yaml, persona 'ok-one', field 'traits'" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_migrate_reports_nothing_pending(cli: Any) -> None:
    assert "applied 0 migration(s)" in cli("migrate").stdout
