"""Helpers for the end-to-end stories: the chart installed with the pinned helm, a database in the
release namespace, the test images, and a REST client that runs inside the cluster.

Built on the operator's cluster-test helpers (tests/operator/cluster/e2e.py) and
tests/cluster/kube_support.py; only what differs for a Helm-installed operator lives here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.kube_support import Kubectl, wait_until
from tests.operator.cluster.e2e import Cluster, build_test_images

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "items"
IMAGES_DIR = REPO / "tests" / "operator" / "cluster" / "images"
SERVICE_PORT = 80

# The client loop, run by python3 in a pod of the service image: GETs of one item (ITEM_ID, or
# one it creates first when ITEM_ID is empty) and every fifth request a POST, against the Service
# by DNS name, one every INTERVAL seconds (PACED=1: requests start on a fixed schedule, so the
# rate holds while latency stays under INTERVAL; else INTERVAL is the pause after each answer),
# until /tmp/stop exists or the deadline passes. Prints
# "client: started" once its first request succeeded, and at the end one JSON line with the
# counts, the statuses, the first errors and per-second [ok, failed] buckets (for timelines).
CLIENT_SCRIPT = r"""
import json, os, time, urllib.error, urllib.request
base, item, interval = os.environ["BASE"], os.environ["ITEM_ID"], float(os.environ["INTERVAL"])
paced, next_at = os.environ.get("PACED") == "1", time.monotonic()
deadline = time.monotonic() + float(os.environ["DEADLINE"])
counts = {"ok": 0, "failed": 0, "requests": 0}
errors, statuses, buckets, started = [], {}, {}, False
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:200].decode(errors="replace")
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
def running():
    return time.monotonic() < deadline and not os.path.exists("/tmp/stop")
while not item and running():
    status, text = call("POST", "/items/", {"name": "client reference item", "price": 1.5})
    if status == 201:
        item = str(json.loads(text)["id"])
    else:
        time.sleep(0.5)
while item and running():
    n = counts["requests"]
    if n % 5 == 4:
        status, detail = call("POST", "/items/", {"name": f"loop {n}", "price": 2.5})
        wanted = 201
    else:
        status, detail = call("GET", f"/items/{item}")
        wanted = 200
    counts["requests"] += 1
    statuses[str(status)] = statuses.get(str(status), 0) + 1
    bucket = buckets.setdefault(str(int(time.time())), [0, 0])
    if status == wanted:
        counts["ok"] += 1
        bucket[0] += 1
        if not started:
            started = True
            print("client: started", flush=True)
    elif started:
        counts["failed"] += 1
        bucket[1] += 1
        if len(errors) < 20:
            errors.append({"t": round(time.time(), 2), "status": status, "detail": detail})
    if paced:  # behind schedule: the next request at once, no burst to catch up
        next_at = max(next_at + interval, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))
    else:
        time.sleep(interval)
counts.update(statuses=statuses, errors=errors, buckets=buckets,
              stopped=os.path.exists("/tmp/stop"), started=started)
print("client-result " + json.dumps(counts), flush=True)
"""


def helm_binary() -> str:
    """The pinned helm (hack/tools path helm), built when missing; ITEMS_HELM overrides."""
    if explicit := os.environ.get("ITEMS_HELM"):
        return explicit
    tools = str(REPO / "hack" / "tools")
    found = subprocess.run(
        [tools, "path", "helm"], capture_output=True, text=True, timeout=30, check=False
    )
    if found.returncode != 0:
        subprocess.run(
            [tools, "install", "helm"], capture_output=True, text=True, timeout=1200, check=True
        )
        found = subprocess.run(
            [tools, "path", "helm"], capture_output=True, text=True, timeout=30, check=True
        )
    return found.stdout.strip()


def helm(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def split_image(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    assert repository, f"expected repository:tag, got {reference!r}"
    assert "/" not in tag, f"expected repository:tag, got {reference!r}"
    return repository, tag


@dataclass(frozen=True)
class Images:
    """v1 (the image under test) and the test images built FROM it (tests/operator/cluster/images,
    same tags as the operator's cluster tests, so a shared session builds and loads them once)."""

    v1: str
    v2: str
    never_ready: str
    migration_fails: str

    @classmethod
    def build_and_load(cls, v1: str) -> Images:
        repo = v1.rsplit(":", 1)[0]
        images = cls(
            v1=v1,
            v2=f"{repo}:e2e-v2",
            never_ready=f"{repo}:e2e-never-ready",
            migration_fails=f"{repo}:e2e-migration-fails",
        )
        build_test_images(
            base=v1,
            folder=IMAGES_DIR,
            builds=[
                ("v2", images.v2, v1),
                ("never-ready", images.never_ready, images.v2),
                ("migration-fails", images.migration_fails, images.v2),
            ],
        )
        return images


class ReleaseCluster(Cluster):
    """Cluster (tests/operator/cluster/e2e.py) reading the Helm release's operator."""

    def __init__(self, kube: Kubectl, release: str) -> None:
        super().__init__(kube)
        self.release = release

    def operator_selector(self) -> str:
        return f"app.kubernetes.io/name=items-operator,app.kubernetes.io/instance={self.release}"

    def operator_pods(self) -> list[dict[str, Any]]:
        return self.items("pods", self.operator_selector())

    def describe(self, name: str) -> str:
        base = super().describe(name).split("\noperator log:\n", 1)[0]
        logs = self.kube.run("logs", "-l", self.operator_selector(), "--tail=40", check=False)
        return f"{base}\noperator log ({self.release}):\n{logs.stdout}{logs.stderr}"


def client_pod(
    name: str,
    image: str,
    base_url: str,
    deadline: float,
    *,
    item_id: int | None = None,
    interval: float = 0.02,
    paced: bool = False,
) -> dict[str, Any]:
    """A pod (restricted level) running CLIENT_SCRIPT against base_url: GETs of `item_id` (or
    of an item it creates), one request every `interval` seconds (`paced`: on a fixed
    schedule, for a load rate; else a pause after each answer)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "e2e-client"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-u", "-c", CLIENT_SCRIPT],
                    "env": [
                        {"name": "BASE", "value": base_url},
                        {"name": "ITEM_ID", "value": "" if item_id is None else str(item_id)},
                        {"name": "DEADLINE", "value": str(deadline)},
                        {"name": "INTERVAL", "value": str(interval)},
                        {"name": "PACED", "value": "1" if paced else "0"},
                    ],
                    "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


class ClientLoop:
    """The in-cluster REST client: start() returns once it has served a request; stop() makes it
    finish and returns its counts."""

    def __init__(self, kube: Kubectl, name: str, pod: dict[str, Any]) -> None:
        self.kube, self.name, self.pod = kube, name, pod
        self.started_at = 0.0

    def logs(self) -> str:
        return self.kube.run("logs", self.name, check=False).stdout

    def start(self, timeout: float = 60) -> None:
        self.kube.run("delete", "pod", self.name, "--ignore-not-found", "--wait=true", timeout=90)
        self.kube.apply(self.pod)
        wait_until(
            f"client pod {self.name} to serve its first request",
            lambda: "client: started" in self.logs(),
            timeout,
            lambda: self.kube.run("describe", "pod", self.name, check=False).stdout,
        )
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        self.kube.run("exec", self.name, "--", "touch", "/tmp/stop", check=False)  # noqa: S108

        def result() -> dict[str, Any] | None:
            for line in self.logs().splitlines():
                if line.startswith("client-result "):
                    parsed: dict[str, Any] = json.loads(line.removeprefix("client-result "))
                    return parsed
            return None

        counts = wait_until(
            f"client pod {self.name} to report", result, timeout, lambda: self.logs()[-2000:]
        )
        counts["seconds"] = round(time.monotonic() - self.started_at, 1)
        self.kube.run("delete", "pod", self.name, "--wait=false", check=False)
        return counts
