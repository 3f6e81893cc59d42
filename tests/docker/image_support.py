"""Helpers for the container image tests: a thin Docker CLI wrapper and container lifecycles.

Outside CI a missing engine or image skips the tests; with CI=true it fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

IN_CI = os.environ.get("CI") == "true"
SERVICE_IMAGE = os.environ.get("ITEMS_TEST_SERVICE_IMAGE", "items-service:dev")
OPERATOR_IMAGE = os.environ.get("ITEMS_TEST_OPERATOR_IMAGE", "items-operator:dev")
APP_UID = 10001
# /tmp as Kubernetes gives it (an emptyDir): with --read-only, the only writable place besides
# the data folder.
TMPFS = "/tmp:rw,nosuid,nodev,size=64m"  # noqa: S108  (a path inside the container)


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail in CI, where the engine and the images are part of the pipeline."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason)


def find_docker_binary() -> str:
    """$DOCKER, else Debian's client (it matches the local engine), else `docker` on PATH."""
    if explicit := os.environ.get("DOCKER"):
        return explicit
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker") or "docker"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], bool], *, deadline_s: float, describe: Callable[[], str]
) -> None:
    """Poll ``condition`` with backoff until true; fail with ``describe()`` at the deadline."""
    deadline = time.monotonic() + deadline_s
    delay = 0.05
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"not reached within {deadline_s}s: {describe()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@dataclass(frozen=True)
class Service:
    name: str
    base_url: str


@dataclass
class Docker:
    """The Docker CLI, remembering the containers it names so a finalizer can remove them."""

    binary: str
    names: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def new_name(self, purpose: str) -> str:
        name = f"items-test-{purpose}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        return name

    def logs(self, name: str) -> str:
        result = self.run("logs", "--tail", "60", name, timeout=30)
        return (result.stdout + result.stderr)[-6000:]

    def running(self, name: str) -> bool:
        result = self.run("inspect", "-f", "{{json .State.Running}}", name, timeout=30)
        return result.returncode == 0 and bool(json.loads(result.stdout))

    def remove_all(self) -> None:
        for name in self.names:
            self.run("rm", "-f", "-v", name, timeout=60)
        self.names.clear()

    def image_config(self, ref: str) -> dict[str, object]:
        result = self.run("image", "inspect", ref, timeout=30)
        assert result.returncode == 0, result.stderr
        config: dict[str, object] = json.loads(result.stdout)[0]["Config"]
        return config

    def _run_args(self, name: str, env: dict[str, str], read_only: bool) -> list[str]:
        # Host network (tests reach the container on 127.0.0.1); by default a read-only root
        # filesystem with a tmpfs /tmp, as the Kubernetes manifests run it.
        args = ["--name", name, "--network", "host"]
        if read_only:
            args += ["--read-only", "--tmpfs", TMPFS]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        return args

    def run_once(
        self,
        image: str,
        command: list[str],
        *,
        env: dict[str, str],
        read_only: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """A one-off command in a fresh container (named, so a timeout still cleans it up)."""
        name = self.new_name(command[0])
        args = self._run_args(name, env, read_only)
        return self.run("run", "--rm", *args, image, *command, timeout=timeout)

    def start_service(
        self,
        image: str,
        *,
        env: dict[str, str],
        read_only: bool = True,
        deadline_s: float = 60,
    ) -> Service:
        """``serve`` on a free loopback port; returns once /readyz answers 200."""
        port = free_port()
        name = self.new_name("serve")
        args = self._run_args(name, env, read_only)
        started = self.run(
            "run",
            "-d",
            *args,
            image,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        )
        assert started.returncode == 0, f"docker run failed: {started.stderr}"
        service = Service(name=name, base_url=f"http://127.0.0.1:{port}")
        last = "no answer yet"

        def ready() -> bool:
            nonlocal last
            if not self.running(name):
                pytest.fail(f"container {name} exited before it was ready:\n{self.logs(name)}")
            try:
                response = httpx.get(f"{service.base_url}/readyz", timeout=2)
            except httpx.HTTPError as exc:
                last = repr(exc)
                return False
            last = f"{response.status_code} {response.text[:300]}"
            return response.status_code == 200

        wait_until(
            ready, deadline_s=deadline_s, describe=lambda: f"/readyz: {last}\n{self.logs(name)}"
        )
        return service
