"""Where the command line keeps its data (one home, the per-user data folder, whatever
folder a command runs from) and what importing the library again does to a persona a
user changed; run as real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.settings import default_home
from tests.conftest import USER_DATA_TRAP

REPO = Path(__file__).resolve().parents[2]


def test_the_suite_never_writes_into_the_users_data_folder() -> None:
    """The default home lies in the per-user data folder, which the suite has made a
    file: anything that would write there (a test that forgot PERSONAE_HOME) fails."""
    assert default_home().name == "personae"
    assert default_home().is_relative_to(USER_DATA_TRAP)
    with pytest.raises(OSError):
        default_home().mkdir(parents=True)


@pytest.fixture
def folders() -> Iterator[Path]:
    """Outside pytest's folders: the embedded PostgreSQL runs as another user and needs
    every parent folder readable."""
    path = Path(tempfile.mkdtemp(prefix="personae-home-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_commands_from_any_folder_share_one_home(
    folders: Path, redis_url: str, cache_namespace: str, model_cache: Path
) -> None:
    """With no PERSONAE_HOME, every command uses the per-user data folder (the embedded
    database there), wherever it runs; the first says it starts a new, empty home. A
    ./.personae folder named in PERSONAE_HOME is used as before."""
    data = folders / "xdg-data"  # this test's own per-user data folder
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {
        "XDG_DATA_HOME": str(data),
        "PERSONAE_REDIS_URL": redis_url,
        "PERSONAE_REDIS_PREFIX": cache_namespace,
        "PERSONAE_EMBEDDING_CACHE_DIR": str(model_cache),
    }
    mine = folders / "mine.yaml"
    mine.write_text(
        "personas:\n- slug: home-tester\n  name: Home Tester\n  description: finds its data\n"
    )

    def personae(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        cwd.mkdir(exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "runtime.cli", *args],
            cwd=cwd,
            env=env | extra | {"PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    first = personae(folders / "notes", "personas", "import", str(mine))
    home = data / "personae"
    notice = (
        f"personae: no data under {home} yet: starting a new, empty home there "
        "(PERSONAE_HOME names another folder)"
    )
    assert first.stderr.splitlines() == [notice]
    assert (home / "pg").is_dir() and not (folders / "notes" / ".personae").exists()
    elsewhere = personae(folders / "elsewhere", "personas", "list")
    assert "home-tester" in elsewhere.stdout, "the same data from another folder"
    assert "no data under" not in elsewhere.stderr

    old = folders / "project"  # a home of the old default, named
    named = personae(old, "personas", "list", PERSONAE_HOME=".personae")
    assert "no data under .personae yet" in named.stderr
    assert (old / ".personae" / "pg").is_dir()
    again = personae(old, "personas", "list", PERSONAE_HOME=".personae")
    assert "home-tester" not in again.stdout and "no data under" not in again.stderr


def test_importing_again_keeps_a_users_change_unless_forced(cli: Any, tmp_path: Path) -> None:
    first = cli("personas", "import")
    assert "created" in first.stdout
    cli("personas", "template", "socratic-tutor", "gentle-tutor")  # the user's v2
    changed = json.loads(cli("personas", "show", "socratic-tutor", "--json").stdout)
    assert changed["version"] == 2

    again = cli("personas", "import")
    assert ", 1 kept" in again.stdout and "0 updated" in again.stdout, again.stdout
    assert "socratic-tutor (v2)" in again.stdout and "--force" in again.stdout
    kept = json.loads(cli("personas", "show", "socratic-tutor", "--json").stdout)
    assert kept == changed, "the user's change stands"

    forced = cli("personas", "import", "--force")
    assert "1 updated" in forced.stdout and "kept" not in forced.stdout
    shipped = json.loads(cli("personas", "show", "socratic-tutor", "--json").stdout)
    assert shipped["version"] == 3 and shipped["traits"] != changed["traits"]

    # a persona only imports ever changed is updated by the next import
    mine = tmp_path / "mine.yaml"
    text = "personas:\n- slug: own-one\n  name: Own One\n  description: {}\n"
    mine.write_text(text.format("the first"))
    cli("personas", "import", str(mine))
    mine.write_text(text.format("the second"))
    updated = cli("personas", "import", str(mine))
    assert "1 updated" in updated.stdout
    assert json.loads(cli("personas", "show", "own-one", "--json").stdout)["version"] == 2
