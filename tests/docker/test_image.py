"""Smoke tests of the built images: what Kubernetes will do with them, on a real engine.

Build first: ``hack/images build``. Run: ``uv run pytest -m docker tests/docker``.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.docker.image_support import APP_UID, Docker, Service

pytestmark = pytest.mark.docker

TOKEN = "docker-smoke-token"


def roundtrip(service: Service) -> None:
    """POST an item, GET it back by id, and find the same fields."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    payload = {"name": f"smoke {uuid.uuid4().hex[:12]}", "price": 12.5, "in_stock": True}
    with httpx.Client(base_url=service.base_url, timeout=10) as client:
        created = client.post("/items/", json=payload, headers=headers)
        assert created.status_code == 201, created.text
        item = created.json()
        fetched = client.get(f"/items/{item['id']}", headers=headers)
        assert fetched.status_code == 200, fetched.text
        assert {key: fetched.json()[key] for key in payload} == payload
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 200, metrics.text


def test_image_metadata(docker: Docker, service_image: str) -> None:
    config = docker.image_config(service_image)
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Entrypoint"] == ["items-service"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
    assert config["WorkingDir"] == "/var/lib/items"
    history = docker.run("history", "--no-trunc", service_image)
    assert "BEGIN CERTIFICATE" not in history.stdout, "a build-time CA leaked into the image"


@pytest.mark.mysql
def test_migrate_then_serve_against_mariadb(
    docker: Docker, service_image: str, fresh_database_url: str
) -> None:
    env = {"DATABASE_URL": fresh_database_url, "ITEMS_API_TOKENS": TOKEN}
    migrated = docker.run_once(service_image, ["migrate"], env=env)
    assert migrated.returncode == 0, f"migrate failed:\n{migrated.stdout}\n{migrated.stderr}"
    # Migrating again is a no-op, as a re-run Kubernetes Job would be.
    again = docker.run_once(service_image, ["migrate"], env=env)
    assert again.returncode == 0, f"second migrate failed:\n{again.stdout}\n{again.stderr}"

    service = docker.start_service(service_image, env=env)
    roundtrip(service)


def test_embedded_default_without_database_url(docker: Docker, service_image: str) -> None:
    """Plain ``docker run IMAGE``: SQLite in /var/lib/items, migrated on start."""
    service = docker.start_service(service_image, env={"ITEMS_API_TOKENS": TOKEN}, read_only=False)
    roundtrip(service)
    listing = docker.run("exec", service.name, "ls", "/var/lib/items")
    assert "items.db" in listing.stdout, listing

    # SIGTERM reaches Gunicorn as PID 1 and it drains and exits cleanly, well before the kill.
    started = time.monotonic()
    stopped = docker.run("stop", "--time", "40", service.name, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - started < 30, docker.logs(service.name)
    exit_code = docker.run("inspect", "-f", "{{.State.ExitCode}}", service.name).stdout.strip()
    assert exit_code == "0", docker.logs(service.name)


def test_operator_image_starts_its_cli(docker: Docker, operator_image: str) -> None:
    config = docker.image_config(operator_image)
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "items_operator"]
    # The entrypoint itself, offline: the handlers and Kopf import, the CLI answers.
    result = docker.run("run", "--rm", "--network", "none", "--read-only", operator_image, "--help")
    assert result.returncode == 0, result.stderr
    assert "--namespace" in result.stdout
    handlers = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--entrypoint",
        "/opt/venv/bin/python",
        operator_image,
        "-c",
        "import kopf, lightkube, items_operator.handlers",
    )
    assert handlers.returncode == 0, handlers.stderr
