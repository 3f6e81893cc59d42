"""Helpers for the operator's end-to-end tests: test images, the shared database, ItemServices,
and reading what the cluster shows (status, Jobs, ReplicaSets, pods, events)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from items_operator.constants import ANNOTATION_IMAGE

from tests.cluster.kube_support import KUBECTL, Kubectl, load_images, port_forward, wait_until

OPERATOR_NAMESPACE = "items-system"
DB_NAMESPACE = "items-e2e-db"
# The operator is started with --namespace for each of these (Kopf needs no namespace watch then).
ROLLOUT_NAMESPACE = "items-e2e-rollout"
LIFECYCLE_NAMESPACE = "items-e2e-lifecycle"
RELEASE_NAMESPACE = "items-e2e-release"
MIGRATION_NAMESPACE = "items-e2e-migration"
E2E_NAMESPACES = (ROLLOUT_NAMESPACE, LIFECYCLE_NAMESPACE, RELEASE_NAMESPACE, MIGRATION_NAMESPACE)

# The image under test (ci-smoke exports ITEMS_SMOKE_IMAGE) and the operator image.
V1 = os.environ.get("ITEMS_E2E_SERVICE_IMAGE") or os.environ.get(
    "ITEMS_SMOKE_IMAGE", "items-service:dev"
)
OPERATOR_IMAGE = os.environ.get("ITEMS_E2E_OPERATOR_IMAGE", "items-operator:dev")
MISSING_IMAGE = "items-service:does-not-exist"
READINESS_TIMEOUT = 15
API_VERSION = "items.platform.dev/v1alpha1"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ImageSet:
    """References of the test-only images (tests/operator/cluster/images), built and loaded."""

    v2: str
    migration_fails: str
    never_ready: str
    crashloop: str
    # v2 whose server exits 1 a second after it starts and reports nothing (bench_faults.py).
    crash: str
    slow_migration: str
    # The rollback floor: v1 reads e2e_legacy, v2 (same revisions) no longer does, v3 drops it.
    floor_v1: str
    floor_v2: str
    floor_v3: str
    # v2 answering 500 to every 5th item request: only its metrics say so (canary analysis).
    server_errors: str
    # v2 that sleeps BENCH_SLOW_START_SECONDS before it listens (the bench's slow starter).
    slow_start: str

    @classmethod
    def build_and_load(cls, *, base: str, folder: Path) -> ImageSet:
        repo = base.rsplit(":", 1)[0]
        images = cls(
            v2=f"{repo}:e2e-v2",
            migration_fails=f"{repo}:e2e-migration-fails",
            never_ready=f"{repo}:e2e-never-ready",
            crashloop=f"{repo}:e2e-crashloop",
            crash=f"{repo}:e2e-crash",
            slow_migration=f"{repo}:e2e-slow-migration",
            floor_v1=f"{repo}:e2e-floor-v1",
            floor_v2=f"{repo}:e2e-floor-v2",
            floor_v3=f"{repo}:e2e-floor-v3",
            server_errors=f"{repo}:e2e-server-errors",
            slow_start=f"{repo}:e2e-slow-start",
        )
        build_test_images(
            base=base,
            folder=folder,
            builds=[
                ("v2", images.v2, base),
                ("migration-fails", images.migration_fails, images.v2),
                ("never-ready", images.never_ready, images.v2),
                ("crashloop", images.crashloop, images.v2),
                ("crash", images.crash, images.v2),
                ("slow-migration", images.slow_migration, base),
                ("floor-v1", images.floor_v1, base),
                ("floor-v2", images.floor_v2, base),
                ("floor-v3", images.floor_v3, images.floor_v2),
                ("server-errors", images.server_errors, images.v2),
                ("slow-start", images.slow_start, images.v2),
            ],
        )
        return images


# Tags built and loaded in this pytest session: the end-to-end stories reuse the operator
# suite's test images instead of building and loading them again.
_BUILT: set[str] = set()


def build_test_images(*, base: str, folder: Path, builds: list[tuple[str, str, str]]) -> None:
    """Build each (Dockerfile suffix, tag, parent image) from `folder`, then load them into the
    cluster; tags already built in this session are skipped."""
    builds = [build for build in builds if build[1] not in _BUILT]
    if not builds:
        return
    docker = os.environ.get("DOCKER", "/usr/bin/docker")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    versions = subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python3",
            base,
            "-c",
            "import migrations, pathlib; "
            "print(pathlib.Path(migrations.__file__).parent / 'versions')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    ).stdout.strip()
    for name, tag, parent in builds:
        result = subprocess.run(
            [
                docker,
                "build",
                "--network",
                "host",
                "-q",
                "--build-arg",
                f"BASE={parent}",
                "--build-arg",
                f"VERSIONS_DIR={versions}",
                "-f",
                str(folder / f"Dockerfile.{name}"),
                "-t",
                tag,
                str(folder),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )
        assert result.returncode == 0, f"docker build {tag}:\n{result.stdout}{result.stderr}"
    load_images(*(tag for _, tag, _ in builds))
    _BUILT.update(tag for _, tag, _ in builds)


class Database:
    """The shared MariaDB (one Deployment in DB_NAMESPACE); one database per ItemService."""

    def __init__(self, namespace: str, password: str) -> None:
        self.kube = Kubectl(namespace)
        self.password = password
        self.host = f"items-db.{namespace}.svc.cluster.local"

    def sql(self, statement: str, database: str = "") -> str:
        result = self.kube.run(
            # `mysql`: in the MariaDB image (a link to mariadb) and in the official MySQL image.
            "exec",
            "deployment/items-db",
            "--",
            "mysql",
            "-uroot",
            f"-p{self.password}",
            "-N",
            "-B",
            *([database] if database else []),
            "-e",
            statement,
        )
        return result.stdout.strip()

    def wait_ready(self, timeout: float) -> None:
        wait_until(
            "the database to take logins",
            lambda: self.sql("SELECT 1") == "1",
            timeout,
            lambda: self.kube.run("get", "pods,events", check=False).stdout,
        )

    def create(self, name: str) -> str:
        """A fresh database; returns the URL the service reaches it with."""
        self.sql(f"CREATE DATABASE `{name}`")
        return f"mysql+pymysql://root:{self.password}@{self.host}:3306/{name}"


@dataclass
class E2E:
    images: ImageSet
    database: Database
    operator_pods: Callable[[], list[dict[str, Any]]]


def secret(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    }


def item_service(name: str, image: str, secret_name: str, **spec: Any) -> dict[str, Any]:
    """A small, fast ItemService: one replica, one worker, 2 s readiness probes, a 15 s
    readiness window, and no retries of a failed migration pod."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ItemService",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "replicas": 1,
            "database": {"secretRef": {"name": secret_name}},
            "env": [{"name": "ITEMS_WORKERS", "value": "1"}],
            "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}},
            "probes": {"readiness": {"periodSeconds": 2, "failureThreshold": 1}},
            "migration": {"backoffLimit": 0, "activeDeadlineSeconds": 180},
            "rollout": {"readinessTimeoutSeconds": READINESS_TIMEOUT},
            **spec,
        },
    }


class Cluster:
    """Reads and waits about ItemServices and their children in one namespace."""

    def __init__(self, kube: Kubectl) -> None:
        self.kube = kube

    def set_image(self, name: str, image: str) -> None:
        self.kube.run(
            "patch",
            "itemservice",
            name,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"image": image}}),
        )

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.kube.get("itemservice", name).get("status") or {}
        return status

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        return next(
            (c for c in self.status(name).get("conditions") or [] if c["type"] == type_), {}
        )

    def items(self, kind: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.kube.run(*args).stdout)["items"]
        return items

    def jobs(self, name: str) -> list[dict[str, Any]]:
        return self.items("jobs", f"app.kubernetes.io/instance={name}")

    def job(self, name: str, image: str) -> dict[str, Any] | None:
        """The newest migration Job of `image` (one per image and database target)."""
        jobs = [
            j
            for j in self.jobs(name)
            if (j["metadata"].get("annotations") or {}).get(ANNOTATION_IMAGE) == image
        ]
        jobs.sort(key=lambda j: j["metadata"]["creationTimestamp"])
        return jobs[-1] if jobs else None

    def server_pods(self, name: str) -> list[dict[str, Any]]:
        return self.items(
            "pods", f"app.kubernetes.io/instance={name},app.kubernetes.io/component=server"
        )

    def replica_sets(self, name: str) -> list[dict[str, Any]]:
        return self.items(
            "replicasets", f"app.kubernetes.io/instance={name},app.kubernetes.io/component=server"
        )

    def deployment_image(self, name: str) -> str:
        dep = self.kube.get("deployment", name)
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.items("events")
            if e["involvedObject"].get("kind") == "ItemService"
            and e["involvedObject"].get("name") == name
        ]

    def wait_phase(
        self,
        name: str,
        phase: str,
        timeout: float,
        *,
        image: str | None = None,
        also: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until status.phase is `phase` for the current generation (and, when given,
        status.targetImage is `image`); `also` runs on every poll (e.g. to sample Jobs)."""

        def reached() -> dict[str, Any] | None:
            if also is not None:
                also()
            body = self.kube.get("itemservice", name)
            status = body.get("status") or {}
            if status.get("observedGeneration") != body["metadata"]["generation"]:
                return None
            if image is not None and status.get("targetImage") != image:
                return None
            return status if status.get("phase") == phase else None

        return wait_until(
            f"ItemService {name} phase {phase}", reached, timeout, lambda: self.describe(name)
        )

    def describe(self, name: str) -> str:
        out = self.kube.run(
            "get", f"itemservice/{name}", "-o", "jsonpath={.status}", check=False
        ).stdout
        more = self.kube.run(
            "get", "pods,replicasets,deployments,jobs,events", "-o", "wide", check=False
        ).stdout
        logs = subprocess.run(
            [KUBECTL, "-n", OPERATOR_NAMESPACE, "logs", "deployment/items-operator", "--tail=30"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        return f"status: {out}\n{more}\noperator log:\n{logs}"

    @contextlib.contextmanager
    def http(self, name: str) -> Iterator[httpx.Client]:
        """An HTTP client reaching the ItemService's Service (port-forward picks a ready pod)."""
        with port_forward(self.kube, f"service/{name}", 80) as client:
            yield client

    def serves(self, name: str) -> dict[str, Any]:
        """Prove the ItemService answers through its Service: ready, and an item round trip.
        Returns the created item."""
        with self.http(name) as client:
            assert client.get("/readyz").status_code == 200
            created = client.post("/items/", json={"name": f"e2e {time.time()}", "price": 1.5})
            assert created.status_code == 201, created.text
            item: dict[str, Any] = created.json()
            assert client.get(f"/items/{item['id']}").status_code == 200
            return item

    def active_jobs(self, name: str) -> list[str]:
        return [
            j["metadata"]["name"]
            for j in self.jobs(name)
            if not any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True"
                for c in j.get("status", {}).get("conditions") or []
            )
        ]

    def hold(self, seconds: float, check: Callable[[], None]) -> None:
        """Assert `check` keeps holding for `seconds` (a bounded negative check)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            check()
            time.sleep(1)


def job_finished_at(job: dict[str, Any]) -> datetime:
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_time(status["completionTime"])
    terminal = next(
        c for c in status.get("conditions") or [] if c["type"] in ("Complete", "Failed")
    )
    return parse_time(terminal["lastTransitionTime"])


def image_of(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def metric_total(text: str, name: str) -> float:
    """Sum of every sample of the Prometheus counter `name` in an exposition `text`."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name}{{", f"{name} "))
    )


CONTAINERD_SOCKET = "unix:///run/items-local-cluster/containerd/containerd.sock"


def _normalized(ref: str) -> str:
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    return ref if "." in first or ":" in first or first == "localhost" else f"docker.io/{ref}"


CONTAINERD_PATH = CONTAINERD_SOCKET.removeprefix("unix://")


def _node_ctr(*args: str, check: bool) -> subprocess.CompletedProcess[str] | None:
    """`ctr` against the local cluster's containerd (its k8s.io namespace); None elsewhere."""
    if not Path(CONTAINERD_PATH).exists():
        return None
    return subprocess.run(
        ["ctr", "--address", CONTAINERD_PATH, "--namespace", "k8s.io", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def node_digest(tag: str) -> str | None:
    """The manifest digest `tag` names in the local cluster's containerd (None elsewhere)."""
    listed = _node_ctr("images", "ls", f"name=={_normalized(tag)}", check=False)
    lines = listed.stdout.splitlines() if listed is not None else []
    return lines[1].split()[2] if len(lines) > 1 else None


def runs(ref: str, tag: str) -> bool:
    """`ref` (a Deployment's, ReplicaSet's or pod's image) is `tag`'s build: the tag itself, or
    repository@digest of it, as the operator pins each release to the bits its migration ran."""
    if ref == tag:
        return True
    repository = tag.rpartition(":")[0] if "/" not in tag.rpartition(":")[2] else tag
    return ref.startswith(f"{repository}@sha256:") and ref.rpartition("@")[2] == node_digest(tag)


def retag_on_node(source: str, tag: str) -> None:
    """Point `tag` at `source`'s image in the node's containerd: a tag re-pushed to a registry
    and pulled again, as a node sees it. Needs the local cluster (hack/local-cluster)."""
    if os.environ.get("ITEMS_IMAGE_LOADER") or not Path(CONTAINERD_PATH).exists():
        pytest.skip("re-tagging on the node needs the local cluster's containerd")
    _node_ctr("images", "tag", "--force", _normalized(source), _normalized(tag), check=True)
