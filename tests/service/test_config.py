"""Settings: documented names, clear failures, secrets from files, nothing leaked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.api.auth import TokenSource
from service.core.config import Settings
from service.core.db import async_url, sync_url
from service.start_report import INVALID_ARGUMENTS, TERMINATION_LOG_ENV, report_start_failure


def _serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ITEMS_") and k not in {"DATABASE_URL", "DATABASE_URL_FILE"}
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ITEMS_DB_POOL_SIZE": "zero"}, "ITEMS_DB_POOL_SIZE"),
        ({"ITEMS_MAX_BODY_BYTES": "-5"}, "ITEMS_MAX_BODY_BYTES"),
        ({"ITEMS_LOG_LEVEL": "LOUD"}, "ITEMS_LOG_LEVEL"),
        ({"ITEMS_REQUIRE_IF_MATCH": "perhaps"}, "ITEMS_REQUIRE_IF_MATCH"),
        ({"DATABASE_URL": "postgresql://u:hunter2@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "::not a url hunter2::"}, "DATABASE_URL"),
        ({"DATABASE_URL_FILE": "/nonexistent/secret"}, "DATABASE_URL_FILE"),
        (
            {"ITEMS_PAGE_SIZE_DEFAULT": "500", "ITEMS_PAGE_SIZE_MAX": "100"},
            "ITEMS_PAGE_SIZE_DEFAULT",
        ),
    ],
)
def test_invalid_setting_stops_start_up_naming_it(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = _serve(env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid configuration" in result.stderr
    assert named in result.stderr
    assert "hunter2" not in result.stderr + result.stdout  # passwords are never echoed
    assert "Traceback" not in result.stderr


def test_database_url_from_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("mysql://app:pw@db.example:3306/items\n")
    settings = Settings(DATABASE_URL_FILE=secret)
    assert str(sync_url(settings)).startswith("mysql+pymysql://app:")
    assert async_url(settings).drivername == "mysql+asyncmy"
    assert sync_url(settings).query["charset"] == "utf8mb4"


def test_async_driver_can_be_pymysql_based() -> None:
    settings = Settings(DATABASE_URL="mysql+pymysql://a:b@h/d", db_async_driver="aiomysql")
    assert async_url(settings).drivername == "mysql+aiomysql"


def test_embedded_default_uses_a_local_sqlite_file() -> None:
    settings = Settings()
    assert str(sync_url(settings)) == "sqlite:///items.db"
    assert async_url(settings).drivername == "sqlite+aiosqlite"


def test_settings_repr_hides_secrets() -> None:
    settings = Settings(DATABASE_URL="mysql://u:hunter2@h/d", api_tokens="tok-1,tok-2")
    assert "hunter2" not in repr(settings)
    assert "tok-1" not in repr(settings)
    assert TokenSource(settings).tokens() == [b"tok-1", b"tok-2"]


def _serve_reporting(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str] | None]:
    """`items-service ARGS` with a termination log, as the kubelet mounts one."""
    log = tmp_path / "termination-log"
    log.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ITEMS_")}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**clean, "ITEMS_TERMINATION_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    text = log.read_text()
    return result, json.loads(text) if text else None


@pytest.mark.parametrize(
    ("args", "env", "reason", "says"),
    [
        (["serve", "--port", "not-a-port"], {}, "InvalidArguments", "--port: invalid int value"),
        (["serve", "--bogus"], {}, "InvalidArguments", "unrecognized arguments: --bogus"),
        (
            ["serve", "--port", "1"],
            {"ITEMS_LOG_LEVEL": "LOUD"},
            "InvalidConfiguration",
            "ITEMS_LOG_LEVEL",
        ),
    ],
)
def test_a_start_failure_no_restart_heals_is_reported_to_the_kubelet(
    args: list[str], env: dict[str, str], reason: str, says: str, tmp_path: Path
) -> None:
    """The operator reads it at the first exit (a crash loop known one restart sooner)."""
    result, report = _serve_reporting(args, env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert report is not None
    assert report["startFailure"] == reason
    assert says in report["detail"]


def test_a_setting_s_bad_number_is_a_usage_error_reported_too(tmp_path: Path) -> None:
    result, report = _serve_reporting(["serve", "--port", "1"], {"ITEMS_WORKERS": "abc"}, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert report is not None
    assert "--workers: invalid int value" in report["detail"]


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL_FILE": "/nonexistent/secret"},
        {"ITEMS_API_TOKENS_FILE": "/nonexistent/tokens"},
        {"ITEMS_API_TOKENS_FILE": "EMPTY"},
    ],
)
def test_a_file_a_later_start_may_find_is_not_reported(env: dict[str, str], tmp_path: Path) -> None:
    """A volume injected late (a secrets agent) heals these by the next start: they stay a
    crash loop for the operator to judge by its repeats, never a certain failure."""
    empty = tmp_path / "tokens"
    empty.write_text("\n")
    env = {k: str(empty) if v == "EMPTY" else v for k, v in env.items()}
    result, report = _serve_reporting(
        ["serve", "--port", "1"], {**env, "ITEMS_SQLITE_PATH": "x.db"}, tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "invalid configuration" in result.stderr
    assert report is None


def test_the_migrator_s_usage_error_leaves_its_termination_log_alone(tmp_path: Path) -> None:
    result, report = _serve_reporting(["migrate", "--bogus"], {}, tmp_path)
    assert result.returncode == 2
    assert report is None


def test_without_a_termination_log_nothing_is_written(tmp_path: Path) -> None:
    missing = tmp_path / "dev" / "termination-log"
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "x"],
        env={**os.environ, "ITEMS_TERMINATION_LOG": str(missing)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert not missing.parent.exists()


def test_a_start_report_always_fits_the_kubelet_s_4096_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(log))
    report_start_failure(INVALID_ARGUMENTS, "é\u2028" * 5000)
    assert len(log.read_bytes()) < 4096
    assert json.loads(log.read_text())["startFailure"] == INVALID_ARGUMENTS
