"""Layout rules checked, not hoped for: SQL lives only in the stores, one place per
table. Every module of the packages is read with ``ast``; a module outside
``SQL_STORES`` fails the check when it holds an SQL statement (a string that starts
with an upper-case SQL keyword and goes on: an HTTP method alone is not one), builds
one with psycopg's ``sql`` module, or runs a statement on a connection or cursor
(``.execute(statement, ...)``, ``.executemany``). A Redis pipeline's ``execute()``
takes no statement and is not SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "agents", "memory", "personas", "socket_server")

SQL_STORES: dict[str, str] = {
    "memory/record/transcripts.py": "sessions and messages",
    "memory/record/trait_records.py": "reply_observations, trait_profiles, persona_metrics, "
    "and a reply's trait summary (messages.extracted_traits) in the same statement",
    "memory/record/feedback.py": "feedback and feedback_actions",
    "memory/record/facts.py": "user_facts and fact_queue (filled by transcripts' user-message "
    "statement)",
    "memory/record/summaries.py": "session_summaries (which sessions are due is read from "
    "sessions and messages)",
    "memory/record/analytics.py": "read-only aggregates behind a persona's quality and analytics",
    "personas/repository.py": "personas, traits, beliefs, modes, style_config, "
    "persona_versions, persona_analyses",
    "personas/card_store.py": "persona_cards",
    "personas/replies.py": "reply_channels",
    "runtime/infra/migrate.py": "schema_migrations, and the migration files it applies",
    "runtime/infra/turn_order.py": "the sessions' advisory locks (no table)",
    "runtime/infra/db.py": "the pool's readiness ping",
}
"""The modules that may hold and run SQL, each with what it is the one place for."""

_STATEMENT = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|LOCK|TRUNCATE|COPY)\s+\S"
)
_COMPOSERS = frozenset({"SQL", "Identifier", "Literal", "Placeholder", "Composed"})


def sql_uses(source: str) -> list[tuple[int, str]]:
    """Where ``source`` holds, builds or runs SQL: ``(line, what)`` pairs."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        text = _leading_text(node)
        if text is not None and _STATEMENT.match(text):
            found.append((node.lineno, f"an SQL statement: {text.strip()[:40]!r}"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("psycopg", "psycopg.sql"):
            if node.module == "psycopg.sql" or any(a.name == "sql" for a in node.names):
                found.append((node.lineno, "imports psycopg's sql module"))
        elif isinstance(node, ast.Import) and any(a.name == "psycopg.sql" for a in node.names):
            found.append((node.lineno, "imports psycopg's sql module"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name == "executemany" or (name == "execute" and node.args):
                found.append((node.lineno, f"runs a statement (.{name})"))
            elif name in _COMPOSERS and _named(node.func.value, "sql"):
                found.append((node.lineno, f"builds a statement (sql.{name})"))
    return found


def _leading_text(node: ast.AST) -> str | None:
    """A string literal's text, or an f-string's up to its first placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def _named(node: ast.expr, name: str) -> bool:
    return (isinstance(node, ast.Name) and node.id == name) or (
        isinstance(node, ast.Attribute) and node.attr == name
    )


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_only_the_stores_hold_or_run_sql() -> None:
    offenders = [
        f"{path.relative_to(ROOT).as_posix()}:{line}: {what}"
        for path in _modules()
        if path.relative_to(ROOT).as_posix() not in SQL_STORES
        for line, what in sql_uses(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "SQL outside the stores (move it into the table's store):\n" + (
        "\n".join(offenders)
    )


def test_each_store_named_holds_sql() -> None:
    """The allowlist stays exact: a store that no longer holds SQL leaves it."""
    for name in SQL_STORES:
        path = ROOT / name
        assert path.is_file(), f"{name} is gone: drop it from SQL_STORES"
        assert sql_uses(path.read_text(encoding="utf-8")), f"{name} holds no SQL any more"


@pytest.mark.parametrize(
    "snippet",
    [
        'await conn.execute("SELECT 1")',
        "await conn.execute(statement, (session_id,))",
        "await cur.executemany(statement, rows)",
        'STATEMENT = "UPDATE sessions SET title = %s WHERE id = %s"',
        'STATEMENT = """\nWITH added AS (INSERT INTO t VALUES (1)) SELECT 1"""',
        'await run(f"DELETE FROM {table} WHERE persona_id = %s")',
        "from psycopg import sql",
        "import psycopg.sql",
        'statement = sql.SQL("x = {}").format(sql.Identifier("y"))',
    ],
)
def test_the_check_sees_sql(snippet: str) -> None:
    assert sql_uses(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "await pipe.execute()",  # a Redis pipeline
        '"""Delete a session and its messages."""',
        'parser.add_argument("--user", help="delete memories by id")',
        'log.info("WITHDRAWN by %s", user)',
        'message = "Select a persona"',
        'route = ("DELETE", "/api/personas/{key}")',  # an HTTP method
        "from psycopg.rows import dict_row",
    ],
)
def test_the_check_leaves_other_code_alone(snippet: str) -> None:
    assert not sql_uses(snippet)
