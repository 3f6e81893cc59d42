"""Fixtures for the container image tests (``-m docker``): the Docker engine, the images that
``hack/images build`` made, and a fresh database on the suite's MariaDB (tests/conftest.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.docker.image_support import (
    OPERATOR_IMAGE,
    SERVICE_IMAGE,
    Docker,
    find_docker_binary,
    unavailable,
)

if TYPE_CHECKING:
    from tests.mariadb import MariaDB


@pytest.fixture(scope="session")
def docker_binary() -> str:
    binary = find_docker_binary()
    try:
        info = subprocess.run(
            [binary, "info", "-f", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"no usable Docker client ({binary}): {exc}")
    if info.returncode != 0:
        unavailable(f"Docker engine not reachable ({binary} info: {info.stderr.strip()[:200]})")
    return binary


@pytest.fixture
def docker(docker_binary: str) -> Iterator[Docker]:
    """A Docker CLI; every container a test names is removed when the test ends."""
    client = Docker(docker_binary)
    yield client
    client.remove_all()


def _require_image(docker_binary: str, ref: str) -> str:
    result = subprocess.run(
        [docker_binary, "image", "inspect", ref],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        unavailable(f"image {ref} is not built (run: hack/images build)")
    return ref


@pytest.fixture(scope="session")
def service_image(docker_binary: str) -> str:
    return _require_image(docker_binary, SERVICE_IMAGE)


@pytest.fixture(scope="session")
def operator_image(docker_binary: str) -> str:
    return _require_image(docker_binary, OPERATOR_IMAGE)


@pytest.fixture
def fresh_database_url(mariadb: MariaDB) -> Iterator[str]:
    """An empty database on the test MariaDB server, so ``migrate`` really creates the schema."""
    name = "items_docker_image"
    url = mariadb.create_database(name)
    yield url
    mariadb.drop_database(name)
