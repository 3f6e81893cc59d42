"""The README's first screen on a stock Debian 12: a container of the plain debian:bookworm-slim
(the local one hack/base-image makes, or Docker Hub's on GitHub), with only python3 installed and
a copy of the repository, as a newcomer's clone. `hack/install-deps uv` installs uv without pip,
then the README's first command, `uv run items-service serve`, answers /healthz. `hack/install-deps
go` installs Go from the Go module proxy. Needs the network (Debian's mirror, PyPI, the Go module
proxy): it is what a newcomer's machine does."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.docker.image_support import Docker, free_port, unavailable

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
BASE = "debian:bookworm-slim"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")

# What the newcomer types after the clone (as root, like `sudo`), and the README's command.
NEWCOMER = r"""
set -eu
step() { echo "newcomer-step: $1 took $((SECONDS - mark))s"; mark=$SECONDS; }
mark=$SECONDS
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 >/dev/null
step "apt-get install python3"
mkdir /repo && tar -x -C /repo
cd /repo
hack/install-deps uv
step "hack/install-deps uv"
hack/install-deps go
/usr/local/go/bin/go version
step "hack/install-deps go"
echo "newcomer-step: starting uv run items-service serve"
exec uv run items-service serve --port "$PORT"
"""


def repository_tar() -> bytes:
    """The working tree as a clone would have it: tracked and new files, not the ignored ones."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    existing = b"\0".join(f for f in files.split(b"\0") if f and (ROOT / f.decode()).exists())
    return subprocess.run(
        ["tar", "-c", "--null", "-T", "-"],
        cwd=ROOT,
        input=existing,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout


def extra_ca_mounts() -> tuple[list[str], dict[str, str]]:
    """This network's HTTPS goes through an extra CA that the host trusts (see hack/images):
    hand it to the container's trust store, and point pip and uv at that store. Empty when the
    host has none (GitHub), so the container is then exactly a stock one."""
    certificates = sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
    if not certificates:
        return [], {}
    mounts = [
        arg
        for cert in certificates
        for arg in ("-v", f"{cert}:/usr/local/share/ca-certificates/{cert.name}:ro")
    ]
    bundle = "/etc/ssl/certs/ca-certificates.crt"  # written by ca-certificates' install
    return mounts, {"PIP_CERT": bundle, "SSL_CERT_FILE": bundle}


def test_readme_first_command_on_stock_debian(docker: Docker) -> None:
    if docker.run("image", "inspect", BASE, timeout=30).returncode != 0:
        unavailable(f"{BASE} is not in the local engine (hack/base-image makes it)")
    port = free_port()
    name = docker.new_name("newcomer")
    mounts, env = extra_ca_mounts()
    env_args = [
        arg for key, value in {**env, "PORT": str(port)}.items() for arg in ("-e", f"{key}={value}")
    ]
    started = time.monotonic()
    # Detached, the repository on stdin: `docker run -i` then closes stdin when tar ends.
    process = subprocess.Popen(
        [
            docker.binary,
            "run",
            "-i",
            "--name",
            name,
            "--network",
            "host",
            *mounts,
            *env_args,
            BASE,
            "bash",
            "-c",
            NEWCOMER,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(repository_tar())
        process.stdin.close()
        deadline = time.monotonic() + 1200
        last = "no answer yet"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"the newcomer's commands exited {process.returncode}:\n{docker.logs(name)}"
                )
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if answer.status_code == 200:
                    break
                last = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            time.sleep(1)
        else:
            pytest.fail(f"/healthz never answered 200 ({last}):\n{docker.logs(name)}")
        took = time.monotonic() - started
        logs = docker.run("logs", name, timeout=60)
        logs_text = logs.stdout + logs.stderr
        steps = [line for line in logs_text.splitlines() if line.startswith("newcomer-step:")]
        print(f"\nstock Debian: start -> /healthz 200 in {took:.0f}s", *steps, sep="\n")
        assert "install-deps: installing uv" in logs_text, logs_text[-4000:]
        assert "go version go1." in logs_text, logs_text[-4000:]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        docker.run("rm", "-f", name, timeout=60)
        process.wait(timeout=60)
