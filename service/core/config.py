"""Settings, read once from the environment (and optional secret files).

Every setting is documented in docs/configuration.md. Names avoid the ``ITEMS_<X>_PORT`` and
``ITEMS_SERVICE_*`` shapes on purpose: Kubernetes injects those for a Service named ``items``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

AsyncMySQLDriver = Literal["asyncmy", "aiomysql"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ITEMS_", extra="ignore", frozen=True)

    # Database. DATABASE_URL keeps its conventional unprefixed name.
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    database_url_file: Path | None = Field(default=None, validation_alias="DATABASE_URL_FILE")
    sqlite_path: Path = Path("items.db")
    db_async_driver: AsyncMySQLDriver = "asyncmy"
    db_pool_size: int = Field(default=16, ge=1, le=512)
    db_max_overflow: int = Field(default=8, ge=0, le=512)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # How long a migration's DDL waits for a metadata lock before it fails (MySQL family).
    migration_lock_wait_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    # How long `migrate` keeps retrying a database it cannot reach before it exits 75 (the
    # migration Job then runs it again: an unreachable database is not the release's fault).
    migration_connect_timeout_seconds: float = Field(default=60.0, ge=0, le=3600)

    # HTTP behaviour.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Framing limits, enforced by the server's protocol (service.core.http_limits).
    max_request_target_bytes: int = Field(default=8192, ge=256, le=1024 * 1024)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    max_headers: int = Field(default=100, ge=8, le=1000)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    keepalive_timeout_seconds: int = Field(default=5, ge=1, le=3600)
    page_size_default: int = Field(default=50, ge=1, le=1000)
    page_size_max: int = Field(default=200, ge=1, le=1000)
    require_if_match: bool = False
    idempotency_key_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    idempotency_purge_interval_seconds: float = Field(default=300, ge=1, le=86400)
    # Signs list cursors; unset: a key generated once per database (table service_secrets).
    cursor_secret: SecretStr | None = None

    # Auth: tokens for writes (and optionally reads); constant-time comparison.
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_tokens_file: Path | None = None
    protect_reads: bool = False

    # Operations.
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_sql: bool = False
    shutdown_delay_seconds: float = Field(default=0.0, ge=0, le=120)
    otlp_endpoint: str | None = None
    service_name: str = "items-service"

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("cursor_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.page_size_default > self.page_size_max:
            raise ValueError("ITEMS_PAGE_SIZE_DEFAULT must not exceed ITEMS_PAGE_SIZE_MAX")
        if self.database_url is not None and self.database_url_file is not None:
            raise ValueError("set DATABASE_URL or DATABASE_URL_FILE, not both")
        url = self.resolved_database_url()
        if url is not None and url.get_backend_name() not in {"mysql", "mariadb", "sqlite"}:
            raise ValueError(
                f"DATABASE_URL: unsupported backend {url.get_backend_name()!r}; "
                "use mysql+pymysql://user:password@host:3306/dbname"
            )
        return self

    def resolved_database_url(self) -> URL | None:
        """The configured server URL, or None for the embedded SQLite default."""
        raw: str | None = None
        if self.database_url is not None:
            raw = self.database_url.get_secret_value()
        elif self.database_url_file is not None:
            try:
                raw = self.database_url_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise UnreadableFileError(
                    f"DATABASE_URL_FILE: cannot read {self.database_url_file}: {exc.strerror}"
                ) from None
        if not raw:
            return None
        try:
            return make_url(raw)
        except Exception:  # the message would echo the URL, password included
            raise ValueError(
                "DATABASE_URL: not a valid URL "
                "(expected mysql+pymysql://user:password@host:3306/dbname)"
            ) from None


class UnreadableFileError(ValueError):
    """A setting names a file that cannot be read now: a volume may still be on its way (an
    injected secret), so this start failure is not one a restart can never heal."""


@lru_cache
def get_settings() -> Settings:
    return Settings()
