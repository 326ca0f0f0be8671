"""OpsDeck configuration: one Settings class fed by the environment.

Sources, highest priority first: keyword arguments, `OPSDECK_<NAME>` (and the unprefixed
`DATABASE_URL` / `REDIS_URL` / `SECRET_KEY`), a file named by `OPSDECK_<NAME>_FILE` or
`<NAME>_FILE` (Docker secrets), `.env`, then the embedded defaults below.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "OPSDECK_"
UNPREFIXED = ("database_url", "redis_url", "secret_key")
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "please-change-me", "replace-me"}
)
MIN_SECRET_LENGTH = 32


class FileSecretsSource(PydanticBaseSettingsSource):
    """Reads `OPSDECK_<NAME>_FILE` / `<NAME>_FILE`: the value is the named file's content."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        names = [f"{ENV_PREFIX}{field_name.upper()}_FILE"]
        if field_name in UNPREFIXED:
            names.append(f"{field_name.upper()}_FILE")
        for name in names:
            path = os.environ.get(name)
            if path:
                try:
                    return Path(path).read_text(encoding="utf-8").strip(), field_name, False
                except OSError as exc:
                    raise ValueError(
                        f"{name}={path}: cannot read the file ({exc.strerror})"
                    ) from exc
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def _env_alias(name: str) -> AliasChoices:
    return AliasChoices(f"{ENV_PREFIX}{name.upper()}", name.upper(), name)


def usable_cores() -> int:
    """The cores this process may run on (a container's cpuset, taskset), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _list_setting(value: Any) -> Any:
    """A list setting from the environment: a JSON list (`["a", "b"]`) or a comma list
    (`a, b`); blank items are dropped either way."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a valid JSON list: {exc}") from exc
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError('a JSON list must hold strings only, e.g. ["a", "b"]')
        return [item.strip() for item in items if item.strip()]
    return [item.strip() for item in text.split(",") if item.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,
    )

    # -- runtime ---------------------------------------------------------------------------
    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = Field(default=8004, ge=1, le=65535)
    public_url: str = ""
    # Proxies whose X-Forwarded-For/-Proto are believed; empty: none (the peer is the client).
    forwarded_allow_ips: str = ""
    frontend_dist: Path | None = None

    # -- storage and queue -----------------------------------------------------------------
    database_url: str = Field(default="", validation_alias=_env_alias("database_url"))
    redis_url: str = Field(default="", validation_alias=_env_alias("redis_url"))
    database_pool_size: int = Field(default=10, ge=1)
    worker_concurrency: int = Field(default=0, ge=0)  # 0: two per usable core
    task_time_limit_seconds: int = Field(default=600, ge=1)
    # From SIGTERM, how long a worker lets its tasks in hand finish before it kills them (they
    # run again: acks_late); `opsdeck serve` waits this long plus 2 s for its worker.
    worker_stop_timeout_seconds: float = Field(default=7.0, gt=0, le=3600)

    # -- security --------------------------------------------------------------------------
    secret_key: SecretStr = Field(default=SecretStr(""), validation_alias=_env_alias("secret_key"))
    # Earlier secret keys, comma-separated: secrets sealed with them (TOTP seeds) still open
    # until `opsdeck keys rotate` re-seals them with the current key.
    previous_secret_keys: SecretStr = Field(default=SecretStr(""))
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    session_ttl_hours: int = Field(default=12, ge=1)
    cookie_secure: bool | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    auth_window_seconds: int = Field(default=900, ge=1)
    auth_max_failures_per_account: int = Field(default=10, ge=1)
    auth_max_failures_per_ip: int = Field(default=50, ge=1)
    auth_max_failures_per_account_ip: int = Field(default=5, ge=1)
    # How long a browser that signed in is known (its cookie lets it past the throttle).
    auth_known_device_days: int = Field(default=30, ge=1, le=400)
    password_hash_time_cost: int = Field(default=3, ge=2)
    password_hash_memory_kib: int = Field(default=65_536, ge=19_456)
    password_hash_parallelism: int = Field(default=4, ge=1)

    # -- outbound fetches (image URLs, webhooks) -------------------------------------------
    fetch_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    fetch_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    fetch_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    fetch_total_timeout_seconds: float = Field(default=30.0, gt=0)
    fetch_per_host_concurrency: int = Field(default=4, ge=1)

    # -- images ----------------------------------------------------------------------------
    max_file_size: int = Field(default=10 * 1024 * 1024, ge=1024)
    images_max_rows: int = Field(default=10_000, ge=1)
    images_max_urls_per_row: int = Field(default=100, ge=1)
    images_max_pixels: int = Field(default=50_000_000, ge=1)
    images_retention_days: int = Field(default=30, ge=1)
    webhook_secret: SecretStr = Field(default=SecretStr(""))

    # -- chat ------------------------------------------------------------------------------
    chat_max_rooms_per_user: int = Field(default=50, ge=1)  # rooms one user created, not archived
    chat_max_members_per_room: int = Field(default=1000, ge=2)
    # Sends per user: a burst of `chat_send_burst`, refilled over `chat_send_window_seconds`.
    chat_send_burst: int = Field(default=30, ge=1)
    chat_send_window_seconds: float = Field(default=10.0, gt=0)
    chat_typing_burst: int = Field(default=10, ge=1)  # typing events per user per 10 s
    # Attachments: the largest file, and the types (detected from the bytes) one may be.
    chat_attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    chat_attachment_types: str = (
        "image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,"
        "application/zip,application/gzip"
    )
    # A mention or direct message still unread this long after the first one pending goes
    # out in an e-mail digest (chat/service/digest.py).
    chat_mention_mail_delay_seconds: float = Field(default=600.0, ge=0)
    # A connection's presence lives this long without a heartbeat (a third of it): the
    # connections of a process that died go offline after it. Open connections are signed in
    # again (a revoked token, a signed-out session) at every heartbeat.
    chat_presence_ttl_seconds: float = Field(default=30.0, ge=0.3, le=3600)
    # Socket.IO over websockets only (no long-polling fallback): several web processes or
    # replicas then need no sticky sessions (docs/chat.md, "Scaling").
    chat_websocket_only: bool = False

    # -- incidents -------------------------------------------------------------------------
    # GET /incidents/stats answers from a cache for at most this many seconds, and only while
    # no incident changed (incidents/service/stats_cache.py); 0: every request computes.
    incidents_stats_cache_seconds: int = Field(default=30, ge=0, le=3600)

    # -- mail ------------------------------------------------------------------------------
    # No host: messages are written as .eml files under <data_dir>/mail instead (core.mail).
    smtp_host: str = ""
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # None: per smtp_security
    smtp_username: str = ""
    smtp_password: SecretStr = Field(default=SecretStr(""))
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    smtp_verify_tls: bool = True
    smtp_ca_file: Path | None = None
    mail_from: str = "OpsDeck <opsdeck@localhost>"

    # -- observability ---------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    log_file: Path | None = None
    log_retention_days: int = Field(default=14, ge=1)
    metrics_dir: Path | None = None
    # `opsdeck worker` serves /metrics on this port too (0: off), for deployments where workers
    # run apart from any web process (their own containers or pods).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, FileSecretsSource(settings_cls), dotenv_settings)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        return _list_setting(value)

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        value = _list_setting(value)
        if not isinstance(value, list):
            return value
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(str(item).strip(), strict=True)))
            except ValueError as exc:
                raise ValueError(
                    f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8, with no host "
                    f"bits set): {exc}"
                ) from exc
        return networks

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("smtp_security", mode="before")
    @classmethod
    def _lower_security(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str) -> str:
        _, address = parseaddr(value)
        local, _, domain = address.rpartition("@")
        if (
            not local
            or not domain
            or "," in value
            or any(c.isspace() for c in address)
            or any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            raise ValueError(
                "must be one e-mail address, optionally with a name: "
                "'OpsDeck <opsdeck@example.com>' or 'opsdeck@example.com'"
            )
        return value.strip()

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        secret = self.secret_key.get_secret_value().strip()
        if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            problems.append(
                "OPSDECK_SECRET_KEY (or SECRET_KEY / SECRET_KEY_FILE) must be set to a random "
                f"value of at least {MIN_SECRET_LENGTH} characters, not a placeholder; "
                'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        webhook_secret = self.webhook_secret.get_secret_value().strip()
        if webhook_secret.lower() in PLACEHOLDER_SECRETS or len(webhook_secret) < MIN_SECRET_LENGTH:
            problems.append(
                "OPSDECK_WEBHOOK_SECRET (or OPSDECK_WEBHOOK_SECRET_FILE) must be set to a random "
                f"value of at least {MIN_SECRET_LENGTH} characters, the same for every process, "
                "so webhook receivers can check signatures"
            )
        if self.smtp_host and self.smtp_username and self.smtp_security == "none":
            problems.append(
                "OPSDECK_SMTP_USERNAME is set with OPSDECK_SMTP_SECURITY=none: the SMTP "
                "password would cross the network in clear; use starttls or tls"
            )
        if not self.database_url or self.database_url.startswith("sqlite"):
            problems.append(
                "OPSDECK_DATABASE_URL (or DATABASE_URL) must point at PostgreSQL in production, "
                "e.g. postgresql+psycopg://opsdeck:PASSWORD@db:5432/opsdeck; SQLite is for "
                "embedded (development) use only"
            )
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    # -- derived values --------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """True when the broker is Celery's filesystem transport (no Redis configured)."""
        return not self.redis_url

    @property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return _normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'opsdeck.db').resolve()}"

    @property
    def broker_url(self) -> str:
        return self.redis_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def mail_dir(self) -> Path:
        """Where messages go as .eml files when no SMTP host is set."""
        return self.data_dir / "mail"

    @property
    def smtp_port_resolved(self) -> int:
        """The SMTP port: the setting, else 465 for tls, 587 for starttls, 25 for none."""
        if self.smtp_port is not None:
            return self.smtp_port
        return {"tls": 465, "starttls": 587, "none": 25}[self.smtp_security]

    @property
    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment == "production" or self.public_base_url.startswith("https://")

    @property
    def celery_concurrency(self) -> int:
        """Worker processes: the setting, else two per usable core. A process waiting for a
        download, the database or the disk leaves its core to the other (bench/ measured one
        per core leaving 20-30 % of the CPU idle on thumbnails)."""
        return self.worker_concurrency or 2 * usable_cores()

    def secret_bytes(self) -> bytes:
        value = self.secret_key.get_secret_value()
        if not value:
            raise RuntimeError("secret key not initialised; call prepare() first")
        return value.encode("utf-8")

    def previous_secret_bytes(self) -> list[bytes]:
        raw = self.previous_secret_keys.get_secret_value()
        return [item.strip().encode("utf-8") for item in raw.split(",") if item.strip()]

    def prepare(self) -> Settings:
        """Create the data directories and, in embedded mode, the generated secret key."""
        for directory in (
            self.data_dir,
            self.media_dir,
            self.broker_dir / "queue",
            self.broker_dir / "control",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.secret_key.get_secret_value():
            self.secret_key = SecretStr(_load_or_create_secret(self.data_dir / "secret_key"))
        if not self.webhook_secret.get_secret_value():
            self.webhook_secret = SecretStr(
                _load_or_create_secret(self.data_dir / "webhook_secret")
            )
        return self


def _normalise_database_url(url: str) -> str:
    # Hosted PostgreSQL services hand out `postgres://` URLs; SQLAlchemy needs a dialect+driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(48)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().prepare()
