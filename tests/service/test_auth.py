"""Bearer tokens: fail closed, follow a rotated Kubernetes Secret, answer as RFC 6750 says."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.auth import TokenSourceError
from service.core.config import Settings
from service.main import create_app
from tests.mariadb import wait_until
from tests.service.test_items_api import assert_problem

BODY = {"name": "a", "price": 1}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class SecretVolume:
    """A folder laid out as the kubelet mounts a Secret: tokens -> ..data/tokens, and
    ..data -> a timestamped folder that an update replaces by an atomic symlink swap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    @property
    def path(self) -> Path:
        return self.root / "tokens"

    def write(self, content: str) -> None:
        self.generation += 1
        folder = self.root / f"..2026_12_01_{self.generation}"
        folder.mkdir()
        (folder / "tokens").write_text(content)
        staged = self.root / "..data_tmp"
        staged.symlink_to(folder.name)
        os.replace(staged, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to("..data/tokens")


def test_an_empty_token_file_refuses_to_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("\n  \n")
    with pytest.raises(TokenSourceError, match="hold no token"):
        create_app(make_settings(api_tokens_file=empty), install_signal_hooks=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ITEMS_")}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**env, "ITEMS_API_TOKENS_FILE": str(empty), "ITEMS_SQLITE_PATH": "x.db"},
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "ITEMS_API_TOKENS_FILE" in result.stderr


def test_a_rotated_secret_is_followed_without_restart(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path)
    volume.write("old-token\n")
    client = make_client(api_tokens_file=volume.path)
    assert client.post("/items/", json=BODY, headers=_bearer("old-token")).status_code == 201
    volume.write("new-token\n")
    wait_until(
        lambda: client.post("/items/", json=BODY, headers=_bearer("new-token")).status_code == 201,
        timeout=10,
        what="the new token to be accepted",
    )
    assert_problem(client.post("/items/", json=BODY, headers=_bearer("old-token")), 401)
    # Emptied later: every protected request is refused (fail closed), none let through.
    volume.write("")
    wait_until(
        lambda: client.post("/items/", json=BODY, headers=_bearer("new-token")).status_code == 401,
        timeout=10,
        what="the emptied file to refuse the old tokens",
    )
    assert_problem(client.post("/items/", json=BODY), 401)


def test_rfc6750_answers(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_tokens=["good-token"])
    missing = assert_problem(client.post("/items/", json=BODY), 401)
    assert missing["type"].endswith("/unauthorized")
    response = client.post("/items/", json=BODY)
    assert response.headers["www-authenticate"] == 'Bearer realm="items"'
    unknown = client.post("/items/", json=BODY, headers=_bearer("bad-token"))
    assert_problem(unknown, 401)
    assert unknown.headers["www-authenticate"].startswith(
        'Bearer realm="items", error="invalid_token"'
    )
    for header in ("Bearer", "Bearer ", "Bearer a b", "Bearer ä"):
        malformed = client.post(
            "/items/", json=BODY, headers={b"Authorization": header.encode("utf-8")}
        )
        assert_problem(malformed, 400)
        assert 'error="invalid_request"' in malformed.headers["www-authenticate"]
    assert_problem(client.post("/items/", json=BODY, headers={"Authorization": "Basic eDp5"}), 401)
    assert client.post("/items/", json=BODY, headers=_bearer("good-token")).status_code == 201
    assert (
        client.post(
            "/items/", json=BODY, headers={"Authorization": "bearer good-token"}
        ).status_code
        == 201
    )


def test_openapi_declares_the_bearer_scheme(make_client: Callable[..., TestClient]) -> None:
    spec = make_client(api_tokens=["t"]).get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    post = spec["paths"]["/items/"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert "WWW-Authenticate" in post["responses"]["401"]["headers"]
