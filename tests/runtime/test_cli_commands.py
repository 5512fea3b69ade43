"""Character cards, sessions and memory administration, bad arguments and log noise of
the ``personae`` command line, run as a real subprocess against the test databases."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory.record.transcripts import Transcripts
from personas.card_png import PICTURE_SIZE, png_chunks
from runtime.cli.main import _parser, main
from tests.personas.test_card_png import image_chunks, texts
from tests.personas.test_cards import png_with, text_chunk, v2


@pytest.fixture
def personae(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Awaitable[tuple[int, str, str]]]]:
    """``status, out, err = await personae(*args)``: the command line in this process (a
    thread of its own, with its own event loop) on the test databases."""
    for key, value in cli_env.items():
        monkeypatch.setenv(key, value)

    async def run(*args: str) -> tuple[int, str, str]:
        try:
            status = await asyncio.to_thread(main, list(args))
        except SystemExit as exc:
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    yield run
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "personae_cli", False)]:
        root.removeHandler(handler)
        handler.close()


async def test_bad_arguments_are_one_line_and_exit_2(
    personae: Any, cli: Any, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()  # not a new home, which a command would announce first
    cases = [
        (("personas", "list", "--limit", "-1"), "--limit: -1 is out of range: must be at least 1"),
        (
            ("personas", "list", "--offset", "-5"),
            "--offset: -5 is out of range: must be at least 0",
        ),
        (("personas", "list", "--limit", "many"), "'many' is not a whole number"),
        (("personas", "export", "-o", str(tmp_path / "missing" / "x.yaml")), "does not exist"),
        (("sessions", "show", "notauuid"), "not a UUID"),
        (("personas", "export", "--format", "card-v2"), "name exactly one persona"),
        (("memory", "forget"), "one of the arguments --user --session is required"),
    ]
    for args, message in cases:
        status, _, err = await personae(*args)
        assert status == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, (args, err)
        assert message in err, (args, err)
    assert not (tmp_path / "missing").exists()
    # and so in a process of its own
    failed = cli("token", "--user", "uma", "--ttl", "-5", ok=False)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        ("personae token: argument --ttl: -5 is out of range: must be at least 1 (see --help)")
    ]


def test_output_is_the_result_and_logs_go_to_a_file(
    cli: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli_env["PERSONAE_LOG_LEVEL"] = "INFO"
    del cli_env["PERSONAE_REDIS_URL"]  # an embedded Redis: its start-up is logged
    listed = cli("personas", "list", "--limit", "3")
    assert " INFO " not in listed.stderr, listed.stderr
    log = (tmp_path / "home" / "personae.log").read_text()
    assert "using embedded Redis" in log
    verbose = cli("-v", "personas", "list", "--limit", "1")
    assert "using embedded Redis" in verbose.stderr
    # -v after the command, or between its words, is the same
    for late in (("personas", "list", "--limit", "1", "-v"), ("personas", "-v", "list")):
        assert "using embedded Redis" in cli(*late).stderr, late
    quiet = cli("personas", "list", "--limit", "1")
    assert "using embedded Redis" not in quiet.stderr, "-v stays off unless given"
    top = cli("--help").stdout
    assert "``" not in top and "The personae command line" in top


def test_every_option_has_help() -> None:
    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{where} {name}")
            elif action.option_strings or action.dest != "help":
                assert action.help, f"{where}: {action.option_strings or action.dest} has no help"

    walk(_parser(), "personae")


async def test_a_card_imports_and_exports_back(personae: Any, tmp_path: Path) -> None:
    png = tmp_path / "mira.png"
    png.write_bytes(png_with([text_chunk("chara", v2())]))
    status, out, err = await personae("personas", "import", str(png))
    assert status == 0, err
    assert "captain-mira-vell" in out and "created" in out
    assert "2 greeting(s), 3 lore entries" in out
    assert "unchanged" in (await personae("personas", "import", str(png)))[1]
    shown = json.loads((await personae("personas", "show", "captain-mira-vell", "--json"))[1])
    assert shown["domains"] == ["adventure", "airship"]

    out_file = tmp_path / "mira-v3.json"
    status, _, err = await personae(
        "personas", "export", "captain-mira-vell", "--format", "card-v3", "-o", str(out_file)
    )
    assert status == 0, err
    exported = json.loads(out_file.read_text())
    assert exported["spec"] == "chara_card_v3"
    assert exported["data"]["scenario"] == v2()["data"]["scenario"]
    assert exported["data"]["some_future_field"] == {"kept": [1, 2, 3]}
    assert "unchanged" in (await personae("personas", "import", str(out_file)))[1]

    plain = tmp_path / "plain.png"
    plain.write_bytes(png_with([]))
    status, _, err = await personae("personas", "import", str(plain))
    assert status == 1
    assert (
        err.strip() == f"personae: {plain}: no character card in this PNG (no 'chara' or "
        "'ccv3' text chunk)"
    )


async def test_a_card_exports_as_png_with_its_picture(personae: Any, tmp_path: Path) -> None:
    """``-o FILE.png`` writes a PNG: the picture of the PNG card the persona came from,
    ``--image``, or one generated for it; the card in ``chara`` (and ``ccv3`` for V3)."""
    picture = png_with([])
    png = tmp_path / "mira.png"
    png.write_bytes(png_with([text_chunk("chara", v2())]))
    assert (await personae("personas", "import", str(png)))[0] == 0

    out = tmp_path / "mira-out.png"
    status, _, err = await personae(
        "personas", "export", "captain-mira-vell", "--format", "card-v2", "-o", str(out)
    )
    assert status == 0, err
    raw = out.read_bytes()
    assert image_chunks(raw) == image_chunks(picture), "its own picture"
    carried = texts(raw)
    assert list(carried) == ["chara"] and carried["chara"]["spec"] == "chara_card_v2"
    assert carried["chara"]["first_mes"] == v2()["data"]["first_mes"], "V1 fields on top"
    assert "unchanged" in (await personae("personas", "import", str(out)))[1]

    v3 = tmp_path / "mira-v3.png"
    assert (await personae(*_export("captain-mira-vell", "card-v3", v3)))[0] == 0
    assert set(texts(v3.read_bytes())) == {"chara", "ccv3"}

    own = tmp_path / "own.yaml"
    own.write_text("personas:\n- slug: no-picture\n  name: No Picture\n  description: plain\n")
    assert (await personae("personas", "import", str(own)))[0] == 0
    made = tmp_path / "made.png"
    assert (await personae(*_export("no-picture", "card-v2", made)))[0] == 0
    header = dict(png_chunks(made.read_bytes(), "made"))[b"IHDR"]
    assert struct.unpack(">II", header[:8]) == PICTURE_SIZE, "a generated picture"
    given = tmp_path / "given.png"
    args = (*_export("no-picture", "card-v2", given), "--image", str(png))
    assert (await personae(*args))[0] == 0
    assert image_chunks(given.read_bytes()) == image_chunks(picture), "the --image picture"

    for bad, says in [
        (("personas", "export", "-o", str(tmp_path / "x.png")), "a definitions file is YAML"),
        ((*_export("no-picture", "card-v2", tmp_path / "x.json"), "--image", str(png)), "PNG"),
        ((*_export("no-picture", "card-v2", tmp_path / "y.png"), "--image", str(own)), "PNG"),
    ]:
        status, _, err = await personae(*bad)
        assert status == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def _export(slug: str, card: str, output: Path) -> tuple[str, ...]:
    return ("personas", "export", slug, "--format", card, "-o", str(output))


@pytest.mark.slow
async def test_card_lore_reaches_the_prompt(
    personae: Any, tmp_path: Path, db: AsyncConnectionPool[Any]
) -> None:
    card = tmp_path / "mira.json"
    card.write_text(json.dumps(v2()))
    assert (await personae("personas", "import", str(card)))[0] == 0
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM personas WHERE slug = 'captain-mira-vell'")
        row = await cur.fetchone()
    assert row is not None
    transcripts = Transcripts(db)
    session = await transcripts.create_session("uma", [row[0]])
    await transcripts.store_user_message(
        session.id,
        user_id="uma",
        speaker="Uma",
        text="Were you ever in a storm?",
        client_msg_id="c1",
    )
    status, prompt, err = await personae(
        "prompt", "--persona", "captain-mira-vell", "--session", str(session.id)
    )
    assert status == 0, err
    system = prompt.split("--- human ---")[0]
    assert "Scenario: Uma has just signed on as the Kestrel's navigator." in system
    assert "The Maelstrom took Mira's first ship." in system
    assert "Examples of how Captain Mira Vell speaks:" in system
    assert system.rstrip().endswith("Never break character as Captain Mira Vell.")


async def test_sessions_can_be_listed_shown_and_exported(
    personae: Any, tmp_path: Path, db: AsyncConnectionPool[Any]
) -> None:
    session = await _session_with_lines(personae, db)
    status, listed, err = await personae("sessions", "list", "--user", "uma")
    assert status == 0, err
    assert str(session) in listed and "albert-einstein" in listed and "2 msgs" in listed
    assert "Uma: My cat is called Planck." in (await personae("sessions", "show", str(session)))[1]
    exported = tmp_path / "session.jsonl"
    await personae("sessions", "export", str(session), "-o", str(exported))
    lines = [json.loads(ln) for ln in exported.read_text().splitlines()]
    assert [ln["text"] for ln in lines] == ["My cat is called Planck.", "I study optics."]
    status, _, err = await personae("sessions", "show", "00000000-0000-0000-0000-000000000001")
    assert status == 1 and "not found" in err


async def _session_with_lines(personae: Any, db: AsyncConnectionPool[Any]) -> Any:
    await personae("personas", "import")
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM personas WHERE slug = 'albert-einstein'")
        row = await cur.fetchone()
    assert row is not None
    transcripts = Transcripts(db)
    session = await transcripts.create_session("uma", [row[0]], title="physics")
    for i, text in enumerate(("My cat is called Planck.", "I study optics.")):
        await transcripts.store_user_message(
            session.id, user_id="uma", speaker="Uma", text=text, client_msg_id=f"c{i}"
        )
    return session.id


@pytest.mark.slow
async def test_memories_can_be_listed_exported_deleted_and_forgotten(
    personae: Any, tmp_path: Path, db: AsyncConnectionPool[Any]
) -> None:
    session = await _session_with_lines(personae, db)
    exported = tmp_path / "session.jsonl"
    await personae("sessions", "export", str(session), "-o", str(exported))
    # a session's export is what memory import reads
    status, _, err = await personae(
        "memory", "import", str(exported), "--persona", "albert-einstein", "--user", "uma"
    )
    assert status == 0, err
    status, out, err = await personae(
        "memory", "list", "--persona", "albert-einstein", "--user", "uma", "--json"
    )
    records = [json.loads(ln) for ln in out.splitlines()]
    assert {r["text"] for r in records} == {"My cat is called Planck.", "I study optics."}
    dump = tmp_path / "memories.jsonl"
    await personae("memory", "export", "--persona", "albert-einstein", "-o", str(dump))
    assert [json.loads(ln)["text"] for ln in dump.read_text().splitlines()] == [
        "My cat is called Planck.",
        "I study optics.",
    ]
    first = next(r for r in records if r["text"].startswith("My cat"))
    status, out, _ = await personae(
        "memory", "delete", "--persona", "albert-einstein", first["memory_id"]
    )
    assert "deleted 1" in out
    status, out, _ = await personae("memory", "forget", "--user", "uma")
    assert "1 session(s), 1 memories" in out
    assert (await personae("sessions", "list", "--user", "uma"))[1] == ""
    status, _, err = await personae(
        "memory", "delete", "--persona", "albert-einstein", first["memory_id"]
    )
    assert status == 1 and "not found" in err
