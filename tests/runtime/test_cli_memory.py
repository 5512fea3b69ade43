"""`personae memory import/search/stats`, `personae prompt` and `personae token` as real
subprocesses with the real MiniLM model and Qdrant Edge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from psycopg_pool import AsyncConnectionPool

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(cli: Any, cli_env: dict[str, str]) -> Any:
    """The CLI with an auth secret set and the shipped library imported."""
    cli_env["PERSONAE_AUTH_SECRET"] = "k" * 32
    cli("personas", "import")
    return cli


def test_import_then_search_finds_rare_words_and_meaning(cli: Any, tmp_path: Path) -> None:
    lines = [
        {
            "text": "My cat is called Zanzibar and she hates thunderstorms.",
            "speaker": "Uma",
            "id": "m1",
            "session": "s1",
            "timestamp": "2026-01-02T10:00:00Z",
        },
        {
            "text": "I moved to Lisbon last spring for a job in renewable energy.",
            "speaker": "Uma",
            "id": "m2",
            "session": "s1",
        },
        {
            "text": "Relativity tells us simultaneity depends on the observer.",
            "speaker": "Albert Einstein",
            "id": "m3",
            "session": "s1",
        },
        {"text": "My locker code is 4417.", "speaker": "Uma", "id": "m4", "session": "s2"},
    ]
    src = tmp_path / "history.jsonl"
    src.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = cli("memory", "import", str(src), "--persona", "albert-einstein", "--user", "uma")
    assert "imported 4 memories" in out.stdout
    again = cli("memory", "import", str(src), "--persona", "albert-einstein", "--user", "uma")
    assert "imported 4 memories" in again.stdout
    assert "4 memories" in cli("memory", "stats").stdout, "re-import overwrites by external id"

    found = cli(
        "memory",
        "search",
        "--persona",
        "albert-einstein",
        "--query",
        "Zanzibar",
        "-k",
        "2",
        "--json",
    ).stdout
    first = json.loads(found)["results"][0]
    assert first["external_id"] == "m1" and first["speaker"] == "Uma"

    queries = tmp_path / "q.jsonl"
    queries.write_text(
        json.dumps({"query": "where does the user live now?", "k": 1, "id": 1})
        + "\n"
        + json.dumps({"query": "4417", "k": 1, "id": 2})
        + "\n"
        + json.dumps({"query": "cat", "k": 3, "session": "s2", "id": 3})
        + "\n"
    )
    results = [
        json.loads(line)
        for line in cli(
            "memory", "search", "--persona", "albert-einstein", "--queries", str(queries)
        ).stdout.splitlines()
    ]
    assert [r["id"] for r in results] == [1, 2, 3]
    assert results[0]["results"][0]["external_id"] == "m2"
    assert results[1]["results"][0]["external_id"] == "m4"
    assert {r["external_id"] for r in results[2]["results"]} == {"m4"}


def test_bad_import_line_is_named_and_nothing_is_written(cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"text": "fine", "speaker": "Uma"}) + '\n{"text": 3}\n')
    failed = cli("memory", "import", str(src), "--persona", "socratic-tutor", ok=False)
    assert failed.returncode == 1 and "bad.jsonl:2" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert "0 memories" in cli("memory", "stats").stdout


def test_token_is_a_valid_jwt(cli: Any) -> None:
    token = cli("token", "--user", "uma", "--role", "admin").stdout.strip()
    claims = jwt.decode(token, "k" * 32, algorithms=["HS256"])
    assert claims["sub"] == "uma" and claims["role"] == "admin"


async def test_prompt_shows_traits_beliefs_memories_and_transcript(
    cli: Any, cli_env: dict[str, str], db: AsyncConnectionPool[Any]
) -> None:
    session_id = await _session_asking(db, "What did you think of quantum dice?")
    # the embedded model gets the short card: what ``personae prompt`` shows is what it gets
    out = cli("prompt", "--persona", "albert-einstein", "--session", str(session_id)).stdout
    assert out.startswith("# prompt for albert-einstein")
    assert "--- short card for the small-local model profile ---" in out
    assert "You are Albert Einstein, theoretical physicist" in out and "You believe:" in out
    assert "What did you think of quantum dice?" in out.split("--- human ---")[-1]
    # a capable model gets the full card
    cli_env |= {"PERSONAE_LLM": "openai:gpt-4o-mini", "OPENAI_API_KEY": "sk-not-used"}
    out = cli("prompt", "--persona", "albert-einstein", "--session", str(session_id)).stdout
    assert "--- full card for the capable model profile ---" in out
    assert "--- system ---" in out and "--- human ---" in out
    assert "What did you think of quantum dice?" in out
    assert "Your convictions:" in out and "Your personality:" in out
    assert "0.9" not in out.split("--- human ---")[0].split("Your personality:")[1][:400], (
        "traits are described in words, not numbers"
    )


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_import_without_ids_is_idempotent_and_takes_chat_export_roles(
    cli: Any, tmp_path: Path
) -> None:
    src = _write_lines(
        tmp_path / "export.jsonl",
        [
            {"role": "user", "text": "My cat is called Miso.", "session": "a"},
            {"role": "assistant", "text": "Miso is a lovely name!", "session": "a"},
            {"role": "user", "text": "ok", "session": "a"},
            {"role": "user", "text": "ok", "session": "a"},
        ],
    )
    for _ in range(2):
        out = cli("memory", "import", str(src), "--persona", "albert-einstein", "--user", "uma")
        assert "imported 4 memories" in out.stdout
    assert "4 memories" in cli("memory", "stats").stdout, "a repeated line is kept, once"
    found = json.loads(
        cli(
            "memory",
            "search",
            "--persona",
            "albert-einstein",
            "--query",
            "Miso",
            "-k",
            "5",
            "--json",
        ).stdout
    )["results"]
    speakers = {r["text"]: r["speaker"] for r in found}
    assert speakers["My cat is called Miso."] == "uma"
    assert speakers["Miso is a lovely name!"] == "Albert Einstein"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["-k", "1000", "--query", "cat"], "-k"),
        (["-k", "0", "--query", "cat"], "-k"),
        (["-k", "many", "--query", "cat"], "-k"),
        (["--query", ""], "--query"),
        (["--query", "   "], "--query"),
    ],
)
def test_bad_search_flags_are_one_line_naming_the_flag(
    cli: Any, args: list[str], flag: str
) -> None:
    failed = cli("memory", "search", "--persona", "albert-einstein", *args, ok=False)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], failed.stderr


def test_bad_import_batch_is_refused(cli: Any, tmp_path: Path) -> None:
    src = _write_lines(tmp_path / "h.jsonl", [{"role": "user", "text": "hi"}])
    failed = cli(
        "memory", "import", str(src), "--persona", "albert-einstein", "--batch", "0", ok=False
    )
    assert failed.returncode == 2 and "--batch" in failed.stderr
    assert "0 memories" in cli("memory", "stats").stdout


def test_import_help_documents_the_line_format(cli: Any) -> None:
    out = cli("memory", "import", "--help").stdout
    assert '"role": "user"' in out and "assistant" in out and "timestamp" in out


async def test_prompt_recalls_a_fact_from_an_old_session(
    cli: Any, db: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    """The memory a new session's turn gets is the old line that answers the question,
    found among other sessions' chatter, and it is in the prompt that is sent."""
    chatter = [
        "The weather has been grey all week.",
        "I finally finished that long novel.",
        "Work was busy, lots of meetings.",
        "We cooked pasta with friends on Friday.",
        "My knee hurts after the run.",
        "I watched a documentary about whales.",
    ]
    lines: list[dict[str, Any]] = []
    for n, session in enumerate(("2024-03", "2024-05", "2024-09")):
        for i, text in enumerate(chatter):
            lines.append({"role": "user", "text": f"{text} ({session})", "session": session})
            lines.append(
                {"role": "assistant", "text": "How interesting, tell me more.", "session": session}
            )
            if n == 0 and i == 2:
                lines.append(
                    {
                        "role": "user",
                        "text": "My sister Ines moved to Porto in March.",
                        "session": session,
                    }
                )
    src = _write_lines(tmp_path / "history.jsonl", lines)
    cli("memory", "import", str(src), "--persona", "albert-einstein", "--user", "uma")

    session_id = await _session_asking(db, "Which city does my sister live in?")
    out = cli("prompt", "--persona", "albert-einstein", "--session", str(session_id)).stdout
    asked = out.rindex("Which city does my sister live in?")
    # the embedded model's prompt says what the user told about them, in the third person
    told = "Uma's sister Ines moved to Porto in March."
    assert told in out[:asked], "recalled, before the question"


async def _session_asking(db: AsyncConnectionPool[Any], text: str) -> Any:
    """A new session of user 'uma' with Albert Einstein whose last line asks ``text``."""
    from memory.record.transcripts import Transcripts

    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM personas WHERE slug = 'albert-einstein'")
        row = await cur.fetchone()
    assert row is not None
    transcripts = Transcripts(db)
    session = await transcripts.create_session("uma", [row[0]])
    await transcripts.store_user_message(
        session.id, user_id="uma", speaker="Uma", text=text, client_msg_id="c1"
    )
    return session.id


async def test_facts_are_listed_corrected_deleted_and_shown_in_the_prompt(
    cli: Any, cli_env: dict[str, str], db: AsyncConnectionPool[Any]
) -> None:
    """`personae memory facts|correct-fact|delete-fact`, and `personae prompt` showing what
    is known about the user, current first and dated (a capable model's card holds every
    current fact; the small model's shows those the search finds, tested apart)."""
    import datetime as dt

    cli_env |= {"PERSONAE_LLM": "openai:gpt-4o-mini", "OPENAI_API_KEY": "sk-not-used"}

    from memory.record.facts import FactStore

    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM personas WHERE slug = 'albert-einstein'")
        row = await cur.fetchone()
    assert row is not None
    facts = FactStore(db)
    lyon = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    await facts.record(
        persona_id=row[0], user_id="uma", subject="home", text="Uma lives in Lyon.", valid_from=lyon
    )
    berlin = await facts.record(
        persona_id=row[0],
        user_id="uma",
        subject="home",
        text="Uma lives in Berlin.",
        valid_from=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    )
    assert berlin.fact is not None
    listed = cli("memory", "facts", "--persona", "albert-einstein", "--user", "uma").stdout
    assert "since 2026-02-01 (current): Uma lives in Berlin." in listed
    assert "since 2025-04-01 (until 2026-02-01): Uma lives in Lyon." in listed

    session_id = await _session_asking(db, "Where do I live?")
    out = cli("prompt", "--persona", "albert-einstein", "--session", str(session_id)).stdout
    assert "What you know about Uma (true now):" in out
    assert "- Uma lives in Berlin (since 1 February 2026)." in out
    assert "Lyon" not in out

    fixed = cli(
        "memory", "correct-fact", "--persona", "albert-einstein", "--user", "uma",
        str(berlin.fact.id), "Uma lives in Munich.",
    ).stdout  # fmt: skip
    assert "[corrected]: Uma lives in Munich." in fixed
    current = cli(
        "memory", "facts", "--persona", "albert-einstein", "--user", "uma", "--current", "--json"
    ).stdout.splitlines()
    (only,) = [json.loads(line) for line in current]
    assert only["text"] == "Uma lives in Munich." and only["origin"] == "corrected"
    cli("memory", "delete-fact", "--persona", "albert-einstein", "--user", "uma", only["id"])
    gone = cli("memory", "delete-fact", "--persona", "albert-einstein", "--user", "uma",
               only["id"], ok=False)  # fmt: skip
    assert gone.returncode == 1 and gone.stderr.count("\n") == 1
    assert "no fact" in gone.stderr and "Traceback" not in gone.stderr


async def test_forgetting_a_session_makes_current_again_the_fact_it_superseded(
    cli: Any, db: AsyncConnectionPool[Any]
) -> None:
    """`personae memory forget --session`: the move told in the forgotten session never
    happened; the home told before is current again and recalled as a fact."""
    from memory.record.facts import FactStore
    from memory.record.transcripts import Transcripts

    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM personas WHERE slug = 'albert-einstein'")
        row = await cur.fetchone()
    assert row is not None
    transcripts, facts = Transcripts(db), FactStore(db)
    for text, fact in (
        ("I live in Lyon.", "Uma lives in Lyon."),
        ("I moved to Berlin.", "Uma lives in Berlin."),
    ):
        session = await transcripts.create_session("uma", [row[0]])
        said, _ = await transcripts.store_user_message(
            session.id, user_id="uma", speaker="Uma", text=text, client_msg_id="c1"
        )
        await facts.record(
            persona_id=row[0],
            user_id="uma",
            subject="home",
            text=fact,
            valid_from=said.created_at,
            source_ids=(said.id,),
        )
    out = cli("memory", "forget", "--session", str(session.id)).stdout
    assert f"forgot session {session.id}: 1 message(s)" in out

    listed = cli("memory", "facts", "--persona", "albert-einstein", "--user", "uma", "--json")
    (only,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert only["text"] == "Uma lives in Lyon." and only["current"]
    assert only["valid_until"] is None and only["superseded_by"] is None
    found = cli(
        "memory", "search", "--persona", "albert-einstein", "--user", "uma",
        "--query", "Where does Uma live?", "-k", "3",
    ).stdout  # fmt: skip
    assert "Uma lives in Lyon." in found
