"""The ``personae`` command run as a real subprocess against the test databases."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(
    db: AsyncConnectionPool[Any],
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    model_cache: Path,
    cache_namespace: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    return env | {
        "PERSONAE_DATABASE_URL": database_url,
        "PERSONAE_REDIS_URL": redis_url,
        "PERSONAE_HOME": str(tmp_path / "home"),
        "PERSONAE_LOG_LEVEL": "WARNING",
        "PERSONAE_EMBEDDING_CACHE_DIR": str(model_cache),
        # a cache of its own: tests recreate personas (new ids, same slugs) under the SQL
        # the cache never hears of, and other test sessions share the Redis server
        "PERSONAE_REDIS_PREFIX": cache_namespace,
    }


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    """``cli(*args, ok=True)``: run ``personae ARGS``; ``ok`` asserts exit status 0."""

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "runtime.cli", *args],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run
