"""Settings: the one place that reads the environment (prefix ``PERSONAE_``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from platformdirs import user_data_path
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.errors import SettingsError

_DB_SCHEMES = ("postgresql://", "postgres://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_HTTP_SCHEMES = ("http://", "https://")


def default_home() -> Path:
    """The per-user data folder (``~/.local/share/personae`` on Linux, or under
    ``$XDG_DATA_HOME``): every command finds the same data wherever it runs."""
    return user_data_path("personae", appauthor=False)


class Settings(BaseSettings):
    """Everything Personae can be configured with; build once with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONAE_",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    home: Path = Field(
        default_factory=default_home,
        description="folder for embedded data; the per-user data folder if unset",
    )
    database_url: str | None = Field(default=None, description="PostgreSQL URL; embedded if unset")
    redis_url: str | None = Field(default=None, description="Redis URL; embedded if unset")
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; embedded if unset")
    qdrant_api_key: SecretStr | None = None
    redis_prefix: str = Field(
        default="personae",
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="prefix of every Redis key and channel (several deployments, one Redis)",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="server processes sharing the port (WebSocket transport only when > 1)",
    )
    worker: int | None = Field(
        default=None, ge=0, description="set by the supervisor in each worker process"
    )
    index_socket: Path | None = Field(
        default=None,
        description="Unix socket of the vector index the supervisor shares (set by it)",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="set by the supervisor: where workers keep metrics for /metrics to sum",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto", description="'auto' runs on uvloop when it is installed"
    )

    llm: str = Field(
        default="local",
        min_length=1,
        description="'local', 'gguf:/path/to/model.gguf' or an init_chat_model id",
    )
    llm_base_url: str | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    embedding_model: str = Field(default="all-MiniLM-L6-v2", min_length=1)
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto", description="'auto': ONNX Runtime, or PyTorch where it is not usable"
    )
    embedding_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="texts of one encode call run side by side, each on one thread",
    )
    embedding_precision: Literal["int8", "fp32"] = Field(
        default="int8",
        description="ONNX Runtime: int8 weights (faster, same recall) or float",
    )
    embedding_cache_size: int = Field(
        default=2048, ge=0, le=1_000_000, description="recent texts whose vectors are kept"
    )
    embedding_cache_dir: Path | None = Field(
        default=None, description="where the ONNX export is kept; $PERSONAE_HOME/models if unset"
    )
    memory_llm: str | None = Field(
        default=None,
        description=(
            "the model that extracts facts about users in the background ('local', "
            "'gguf:...' or an init_chat_model id); unset: the rule-based local extractor"
        ),
    )
    memory_consolidation_idle_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="how long a consolidation worker waits once it drained the queue",
    )
    summary_quiet_s: float = Field(
        default=900.0,
        gt=0,
        le=604_800,
        description=(
            "a session is summarised once its last message is this old (seconds), or at"
            " once when it ends"
        ),
    )
    llm_judges: bool = Field(
        default=True,
        description="with a non-local model: rate memory importance and judge traits with it",
    )

    auth_secret: SecretStr | None = None
    allow_open_without_secret: bool = Field(
        default=False,
        description="serve on an address other than loopback with no secret (every client "
        "who reaches the port is an admin): only behind something that keeps others out",
    )
    allowed_origins: str = Field(
        default="",
        max_length=4_000,
        description=(
            "web origins besides the server's own that may connect and call the API, "
            "comma-separated (https://app.example.com,http://localhost:5173)"
        ),
    )

    allowed_hosts: str = Field(
        default="",
        max_length=4_000,
        description=(
            "with no auth secret: host names besides localhost and IP addresses that "
            "requests may be addressed to, comma-separated (* for any)"
        ),
    )

    memory_k: int = Field(default=6, ge=1, le=100)
    memory_half_life_hours: float = Field(default=72.0, gt=0, le=100_000)
    memory_weight_relevance: float = Field(default=1.0, ge=0, le=10)
    memory_weight_keyword: float = Field(default=1.0, ge=0, le=10)
    memory_weight_speaker: float = Field(default=0.5, ge=0, le=10)
    memory_weight_recency: float = Field(default=0.1, ge=0, le=10)
    memory_weight_importance: float = Field(default=0.1, ge=0, le=10)
    memory_records_cached: int = Field(
        default=20_000,
        ge=0,
        le=10_000_000,
        description="recent memories the embedded store keeps as records (about 1 KB each)",
    )
    transcript_lines: int = Field(default=12, ge=0, le=200)
    prompt_budget_tokens: int = Field(default=1536, ge=256, le=200_000)
    drift_threshold: float = Field(default=0.25, gt=0, le=1)

    db_pool_min: int = Field(default=1, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=500)
    db_lock_pool_max: int = Field(
        default=20,
        ge=1,
        le=500,
        description="connections holding sessions' turn locks: sessions with a turn at once",
    )
    persona_cache_ttl_s: float = Field(default=300.0, gt=0, le=86_400)
    persona_l1_ttl_s: float = Field(default=30.0, ge=0, le=3_600)
    max_message_chars: int = Field(default=8_000, ge=1, le=1_000_000)
    rate_limit_per_minute: int = Field(default=30, ge=1, le=100_000)
    max_concurrent_turns: int = Field(default=2, ge=1, le=1_000)
    rate_limit_fail_open: bool = True
    sessions_per_minute: int = Field(
        default=10, ge=1, le=100_000, description="new sessions a user may start per minute"
    )
    max_rooms_per_connection: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="sessions one connection follows; joining one more leaves the oldest",
    )
    max_concurrent_searches: int = Field(
        default=8, ge=1, le=10_000, description="memory searches a process runs at once"
    )
    autonomous_max_rounds: int = Field(default=6, ge=0, le=50)
    answer_on_rejoin: bool = Field(
        default=False,
        description="rejoining a session answers its recent user messages that have no reply",
    )
    shutdown_grace_s: float = Field(default=20.0, ge=0, le=600)
    idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="time an HTTP connection may stay without a whole request (from its "
        "start, and between requests) before it is closed",
    )
    max_connections_per_client: int = Field(
        default=2_000,
        ge=1,
        le=1_000_000,
        description="connections one client address may hold open on a process; more are "
        "closed at once",
    )
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="time a client has to send a request body (REST and polling POSTs)",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _DB_SCHEMES)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _REDIS_SCHEMES)

    @field_validator("qdrant_url", "llm_base_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _HTTP_SCHEMES)

    @field_validator("auth_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters for HS256")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in _split_list(value):
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        for host in _split_list(value):
            if host != "*" and not _HOST_NAME.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name (no scheme, port or path)")
        return value

    @property
    def auth_enabled(self) -> bool:
        return self.auth_secret is not None

    @property
    def origins(self) -> frozenset[str]:
        """The extra origins of ``PERSONAE_ALLOWED_ORIGINS``, lower-cased."""
        return frozenset(o.lower() for o in _split_list(self.allowed_origins))

    @property
    def hosts(self) -> frozenset[str] | None:
        """The host names requests may name in ``Host`` when no secret is set (besides
        localhost and IP addresses): ``PERSONAE_ALLOWED_HOSTS`` and the hosts of
        ``PERSONAE_ALLOWED_ORIGINS``. ``None``: any (a secret is set, or ``*``)."""
        names = {h.lower() for h in _split_list(self.allowed_hosts)}
        if self.auth_enabled or "*" in names:
            return None
        names.update(urlsplit(origin).hostname or "" for origin in self.origins)
        return frozenset(names - {""})


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def _split_list(value: str) -> list[str]:
    return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]


def _check_scheme(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None or value.strip() == "":
        return None
    if not value.startswith(schemes):
        raise ValueError(f"must start with one of {', '.join(schemes)}")
    return value


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and explicit overrides), or raise
    :class:`SettingsError` naming every bad setting by its environment variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"PERSONAE_{field.upper()}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
