from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import SettingsError
from runtime.settings import default_home, load_settings


def test_defaults_are_embedded(no_personae_env: None) -> None:
    s = load_settings()
    assert s.database_url is None and s.redis_url is None and s.qdrant_url is None
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.home == default_home()
    assert s.llm == "local"
    assert not s.auth_enabled


def test_environment_is_read(no_personae_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_PORT", "9001")
    monkeypatch.setenv("PERSONAE_DATABASE_URL", "postgresql://u@db:5432/p")
    monkeypatch.setenv("PERSONAE_AUTH_SECRET", "s" * 40)
    monkeypatch.setenv("PERSONAE_REDIS_URL", "")
    s = load_settings()
    assert s.port == 9001 and s.database_url == "postgresql://u@db:5432/p"
    assert s.auth_enabled and s.redis_url is None
    assert "s" * 40 not in repr(s), "the secret must not appear in logs"


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("PERSONAE_PORT", "70000", "PERSONAE_PORT"),
        ("PERSONAE_PORT", "eighty", "PERSONAE_PORT"),
        ("PERSONAE_DATABASE_URL", "mysql://x", "PERSONAE_DATABASE_URL"),
        ("PERSONAE_REDIS_URL", "http://x", "PERSONAE_REDIS_URL"),
        ("PERSONAE_QDRANT_URL", "qdrant:6333", "PERSONAE_QDRANT_URL"),
        ("PERSONAE_AUTH_SECRET", "short", "PERSONAE_AUTH_SECRET"),
        ("PERSONAE_LOG_LEVEL", "LOUD", "PERSONAE_LOG_LEVEL"),
        ("PERSONAE_DB_POOL_MAX", "0", "PERSONAE_DB_POOL_MAX"),
        ("PERSONAE_EMBEDDING_BACKEND", "gpu", "PERSONAE_EMBEDDING_BACKEND"),
        ("PERSONAE_EMBEDDING_THREADS", "0", "PERSONAE_EMBEDDING_THREADS"),
    ],
)
def test_bad_values_are_rejected_naming_the_setting(
    no_personae_env: None, monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_cli_reports_bad_setting_without_traceback(
    no_personae_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli.main import main

    monkeypatch.setenv("PERSONAE_PORT", "-1")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "PERSONAE_PORT" in err and "Traceback" not in err


def test_the_embedder_follows_the_settings(
    no_personae_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from memory import OnnxEmbedder, SentenceTransformerEmbedder
    from runtime.services import embedder_for

    monkeypatch.setenv("PERSONAE_HOME", str(tmp_path))
    default = embedder_for(load_settings())
    assert isinstance(default, OnnxEmbedder) and default.backend == "onnx"
    monkeypatch.setenv("PERSONAE_EMBEDDING_BACKEND", "torch")
    assert isinstance(embedder_for(load_settings()), SentenceTransformerEmbedder)
