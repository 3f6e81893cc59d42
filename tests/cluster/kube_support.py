"""Helpers for the cluster tests: a namespaced kubectl with timeouts, deadline waits, and the
service image's container spec."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

IMAGE = os.environ.get("ITEMS_SMOKE_IMAGE", "items-service:dev")
# The in-cluster database: images/mariadb (Debian's mariadb-server) by default; GitHub Actions
# may set the official mysql:8.4 instead. Both read the MYSQL_* variables.
DB_IMAGE = os.environ.get("ITEMS_E2E_DB_IMAGE", "items-platform/mariadb:10.11-local")
DB_NAME = "items-db"


def cluster_setting(file: str, name: str) -> str | None:
    """A `NAME=value` or `NAME="value"` line of a shell file under hack/cluster/."""
    text = (REPO_ROOT / "hack" / "cluster" / file).read_text()
    match = re.search(rf'^{name}=(?:"([^"]*)"|(\S+))', text, re.MULTILINE)
    return None if match is None else match.group(1) or match.group(2)


def _pinned_kubectl() -> str:
    """The kubectl built at the cluster's pinned version, else the one on PATH."""
    if explicit := os.environ.get("ITEMS_KUBECTL"):
        return explicit
    version = cluster_setting("versions.env", "KUBERNETES_VERSION")
    cache = Path(os.environ.get("ITEMS_CACHE_DIR", "/var/cache/items-platform"))
    if version:
        candidate = cache / "kubernetes" / version / "kubectl"
        if candidate.is_file():
            return str(candidate)
    return "kubectl"


KUBECTL = _pinned_kubectl()


class Kubectl:
    """kubectl bound to one namespace, with a timeout on every call."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def args(self, *args: str) -> list[str]:
        return [KUBECTL, "--namespace", self.namespace, *args]

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.args(*args), input=stdin, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def apply(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.run("get", kind, name, "-o", "json").stdout)
        return result


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call check() until it returns something truthy; fail with what (and describe()) at the
    deadline. Polls every half second."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (AssertionError, subprocess.TimeoutExpired, httpx.HTTPError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(0.5)
    detail = describe() if describe else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what}: {last_error or ''}\n{detail}")


def describe(kube: Kubectl) -> str:
    result = kube.run("get", "pods,deployments,jobs,services,events", "-o", "wide", check=False)
    return result.stdout + result.stderr


def service_container(*, args: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/items"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir in the pod)
        ],
    }
    if args is not None:
        container["command"] = args
    return container


VOLUMES = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]


def require_cluster() -> str:
    """The kubeconfig of the cluster under test: skipped without one, failed in CI."""
    if not os.environ.get("KUBECONFIG"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but KUBECONFIG is unset: run hack/cluster/ci-smoke")
        pytest.skip("KUBECONFIG unset: start a cluster with hack/local-cluster up")
    return os.environ["KUBECONFIG"]


@contextlib.contextmanager
def fresh_namespace(name: str) -> Iterator[Kubectl]:
    """A namespace of its own for an API test (one left by an interrupted run removed first),
    deleted afterwards."""
    require_cluster()
    delete_namespace(name)
    kube = Kubectl(name)
    kube.run("create", "namespace", name)
    try:
        yield kube
    finally:
        delete_namespace(name)


def delete_namespace(*names: str) -> None:
    """Delete namespaces without waiting: their objects go in the background."""
    subprocess.run(
        [KUBECTL, "delete", "namespace", *names, "--wait=false"],
        capture_output=True,
        timeout=60,
        check=False,
    )


def wait_for_default_service_account(kube: Kubectl, timeout: float = 60) -> None:
    """A new namespace takes pods only once its default ServiceAccount exists."""
    wait_until(
        f"the default ServiceAccount of {kube.namespace}",
        lambda: kube.run("get", "serviceaccount", "default", check=False).returncode == 0,
        timeout,
    )


def load_images(*images: str) -> None:
    """Make locally built images available to the cluster's nodes: the one image-loading hook.

    ITEMS_IMAGE_LOADER is the command, with the image references appended: by default our
    local cluster's loader; on GitHub Actions, for example, ``kind load docker-image``.
    """
    loader = os.environ.get("ITEMS_IMAGE_LOADER") or str(REPO_ROOT / "hack/local-cluster") + " load"
    result = subprocess.run([*loader.split(), *images], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"loading {images} with {loader!r} failed:\n{result.stderr}")


def restricted_namespace(name: str) -> dict[str, Any]:
    """A Namespace that enforces (and warns on) the "restricted" Pod Security level."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


@contextlib.contextmanager
def port_forward(
    kube: Kubectl, target: str, port: int, timeout: float = 30
) -> Iterator[httpx.Client]:
    """An HTTP client for `target` (e.g. service/shop) through kubectl port-forward on
    127.0.0.1; the forward is stopped afterwards."""
    proc = subprocess.Popen(
        kube.args("port-forward", "--address", "127.0.0.1", target, f":{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # "Forwarding from 127.0.0.1:PORT -> ..." once it listens; bounded wait for it.
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward {target} printed {line!r}"
        with httpx.Client(base_url=f"http://127.0.0.1:{match.group(1)}", timeout=10) as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def database_manifests(
    root_password: str,
    *,
    namespace: str | None = None,
    app_account: tuple[str, str, str] | None = None,
) -> list[dict[str, Any]]:
    """One MariaDB/MySQL (DB_IMAGE) Deployment and its Service, both named DB_NAME, at the
    restricted Pod Security level; ready once it accepts TCP on 3306 (logins may take a moment
    longer). `app_account` (database, user, password) is created at first start."""
    labels = {"app": DB_NAME}
    meta: dict[str, Any] = {"name": DB_NAME, "labels": labels}
    if namespace is not None:
        meta["namespace"] = namespace
    env = [{"name": "MYSQL_ROOT_PASSWORD", "value": root_password}]
    if app_account is not None:
        database, user, password = app_account
        env += [
            {"name": "MYSQL_DATABASE", "value": database},
            {"name": "MYSQL_USER", "value": user},
            {"name": "MYSQL_PASSWORD", "value": password},
        ]
    container = {
        "name": "db",
        "image": DB_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [{"name": "mysql", "containerPort": 3306}],
        "readinessProbe": {"tcpSocket": {"port": "mysql"}, "periodSeconds": 2},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
    }
    pod_security = {
        "runAsNonRoot": True,
        "runAsUser": 999,
        "runAsGroup": 999,
        "fsGroup": 999,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": pod_security,
                        "containers": [container],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": dict(meta),
            "spec": {"selector": labels, "ports": [{"name": "mysql", "port": 3306}]},
        },
    ]
