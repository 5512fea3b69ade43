"""``personae personas create|edit|delete|versions|diff|restore|generate|channels|template``
against the test databases. The command's ``main`` runs in this process (a subprocess
per command spent most of its time importing); ``tests/runtime/test_cli.py`` covers the
installed entry point as a subprocess."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.cli.main import main
from tests.personas.factory import definition
from tests.socket_server.test_studio import ESSAY, LETTER


@pytest.fixture
def cli(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    """``cli(*args, ok=True)``: ``personae ARGS`` in-process, as a CompletedProcess."""
    for key, value in cli_env.items():
        if key.startswith("PERSONAE_"):
            monkeypatch.setenv(key, value)

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        if ok:
            assert code == 0, err
        return subprocess.CompletedProcess(list(args), code, out, err)

    yield run


def test_create_edit_diff_restore_delete(cli: Any, tmp_path: Path) -> None:
    file = tmp_path / "tutor.yaml"
    file.write_text(yaml.safe_dump(definition("cli-tutor").model_dump(mode="json")))
    assert "created cli-tutor v1" in cli("personas", "create", str(file)).stdout

    edited = cli(
        "personas",
        "edit",
        "cli-tutor",
        "--set",
        "description=A tutor of plants.",
        "--set",
        "style.temperature=0.9",
        "--belief",
        "Light feeds the leaf.|field notes",
        "--reason",
        "plants",
    )
    assert "cli-tutor v1 -> v2" in edited.stdout
    shown = json.loads(cli("personas", "show", "cli-tutor", "--json").stdout)
    assert shown["description"] == "A tutor of plants." and shown["style"]["temperature"] == 0.9
    assert shown["beliefs"] == [{"text": "Light feeds the leaf.", "source": "field notes"}]

    versions = json.loads(cli("personas", "versions", "cli-tutor", "--json").stdout)
    assert [v["reason"] for v in versions] == ["created", "plants"]
    diff = cli("personas", "diff", "cli-tutor", "1", "2").stdout
    assert "~ description:" in diff and "+ beliefs:" in diff
    assert "~ style.temperature: 0.6 -> 0.9" in diff

    assert "version 1 restored as v3" in cli("personas", "restore", "cli-tutor", "1").stdout
    assert "0 change(s)" in cli("personas", "diff", "cli-tutor", "1").stdout

    bad = cli("personas", "edit", "cli-tutor", "--set", "style.temperature=7", ok=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "temperature" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    nothing = cli("personas", "edit", "cli-tutor", ok=False)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr

    assert "deleted cli-tutor" in cli("personas", "delete", "cli-tutor").stdout
    gone = cli("personas", "show", "cli-tutor", ok=False)
    assert gone.returncode == 1 and "not found" in gone.stderr


def test_generate_channels_and_templates(cli: Any, tmp_path: Path) -> None:
    essay, letters = tmp_path / "essay.txt", tmp_path / "letters.jsonl"
    essay.write_text(ESSAY)
    letters.write_text(json.dumps({"text": LETTER}) + "\n")
    out = cli("personas", "generate", "--name", "Garden Voice", str(essay), str(letters)).stdout
    assert "generated garden-voice (inactive)" in out and "2 sample(s)" in out
    shown = json.loads(cli("personas", "show", "garden-voice", "--json").stdout)
    assert not shown["active"] and any(t["name"] == "formality" for t in shown["traits"])

    short = tmp_path / "short.txt"
    short.write_text("Only a line.")
    refused = cli("personas", "generate", "--name", "X", str(short), ok=False)
    assert refused.returncode == 2 and "at least 150 words" in refused.stderr
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\x00\x00\x01")
    not_text = cli("personas", "generate", "--name", "X", str(binary), ok=False)
    assert not_text.returncode == 2 and "not a text file" in not_text.stderr

    listed = cli(
        "personas",
        "channels",
        "garden-voice",
        "--set",
        "newsletter",
        "--min-words",
        "80",
        "--max-words",
        "200",
        "--lists",
        "yes",
    ).stdout
    assert "channel newsletter set" in listed and "newsletter" in listed and "linkedin" in listed
    removed = cli("personas", "channels", "garden-voice", "--remove", "newsletter").stdout
    assert "channel newsletter removed" in removed
    builtin = cli("personas", "channels", "garden-voice", "--remove", "chat", ok=False)
    assert builtin.returncode == 2 and "built-in" in builtin.stderr

    assert "gentle-tutor" in cli("personas", "template").stdout
    applied = cli("personas", "template", "garden-voice", "gentle-tutor").stdout
    assert "template gentle-tutor applied" in applied


def test_generate_reads_no_more_than_samples_may_hold(tmp_path: Path) -> None:
    """A huge sample file is refused having read only what all samples may hold."""
    from runtime.cli.studio import MAX_SAMPLE_BYTES, StudioInputError, read_samples

    big = tmp_path / "big.txt"
    with big.open("wb") as out:
        out.truncate(64 * 1024**2)  # sparse: 64 MiB of zero bytes, never read whole
    small = tmp_path / "small.txt"
    small.write_text("Some words. " * 10)
    with pytest.raises(StudioInputError, match=f"{big}: the samples are larger than"):
        read_samples([small, big])
    fits = tmp_path / "fits.txt"
    fits.write_text("a" * (MAX_SAMPLE_BYTES - 200))
    assert len(read_samples([small, fits])) == 2


def test_a_huge_definition_file_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    from personas.definitions import MAX_DEFINITION_BYTES, DefinitionError, load_file

    big = tmp_path / "big.yaml"
    with big.open("wb") as out:
        out.truncate(MAX_DEFINITION_BYTES + 1)
    with pytest.raises(DefinitionError, match="larger than 4 MiB"):
        load_file(big)
