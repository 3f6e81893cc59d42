"""Fixtures for the operator's cluster tests (pytest -m cluster; run by hack/cluster/ci-smoke).

Two kinds of tests live here:
- API tests (`kube`): the CRD on the API server, no operator.
- End-to-end tests (`e2e`): the operator runs IN the cluster as a Deployment of
  items-operator:dev under the RBAC from operator/rbac, serving a fixed set of namespaces with the
  restricted Pod Security level; one MariaDB (images/mariadb) serves every test, each
  ItemService with its own database; test images are built FROM items-service:dev
  (tests/operator/cluster/images) and loaded through kube_support.load_images.
  ITEMS_E2E_SERVICE_IMAGE / ITEMS_E2E_OPERATOR_IMAGE / ITEMS_E2E_DB_IMAGE pick other images.

Every wait has a deadline; teardown deletes the ItemServices while the operator still runs (its
finalizer must be removed), then the namespaces.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube_support import (
    KUBECTL,
    Kubectl,
    database_manifests,
    delete_namespace,
    require_cluster,
    restricted_namespace,
    wait_until,
)
from tests.operator.cluster.e2e import (
    DB_NAMESPACE,
    E2E,
    E2E_NAMESPACES,
    OPERATOR_IMAGE,
    OPERATOR_NAMESPACE,
    V1,
    Database,
    ImageSet,
)
from tests.operator.cluster.operators import operator_kube, ready_operator_pods

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "itemservice.yaml"
PEERING_CRD = REPO / "crds" / "kopf-peering.yaml"
RBAC = REPO / "operator" / "rbac"
DEPLOY = REPO / "operator" / "deploy"


def _require_cluster() -> None:
    require_cluster()


def _kubectl(*args: str, stdin: str | None = None, timeout: float = 60) -> str:
    result = subprocess.run(
        [KUBECTL, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result.stdout


def _install_crds() -> None:
    _kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD), "-f", str(PEERING_CRD))
    _kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/itemservices.items.platform.dev",
        "crd/clusterkopfpeerings.kopf.dev",
        timeout=70,
    )


@pytest.fixture(scope="session")
def crds() -> None:
    """The CRDs on the API server, for tests that run the operator in this process (a fresh
    cluster has none until a fixture installs them)."""
    _require_cluster()
    _install_crds()


@pytest.fixture(scope="module")
def kube() -> Iterator[Kubectl]:
    """The ItemService CRD installed (server-side apply, idempotent) and a fresh namespace that
    no operator serves."""
    _require_cluster()
    _install_crds()
    namespace = f"items-operator-{secrets.token_hex(3)}"
    kube = Kubectl(namespace)
    kube.run("create", "namespace", namespace)
    wait_until(
        "the ItemService kind to be served",
        lambda: kube.run("get", "itemservices", check=False).returncode == 0,
        timeout=30,
    )
    try:
        yield kube
    finally:
        delete_namespace(namespace)


def _apply(*manifests: dict[str, Any]) -> None:
    _kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": list(manifests)}),
    )


def _rbac_manifests() -> list[dict[str, Any]]:
    """operator/rbac as shipped, minus its example workload RoleBinding (we bind our own
    namespaces); the Lease's Role and RoleBinding in the operator namespace stay."""
    docs: list[dict[str, Any]] = []
    for path in sorted(RBAC.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [
        d
        for d in docs
        if not (d["kind"] == "RoleBinding" and d["roleRef"]["name"] == "items-operator-workloads")
    ]


def _workloads_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "items-operator-workloads", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "items-operator-workloads",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "items-operator", "namespace": OPERATOR_NAMESPACE}
        ],
    }


def _operator_deployment() -> dict[str, Any]:
    """operator/deploy/operator.yaml with our image, one replica, and the e2e namespaces."""
    deployment: dict[str, Any] = yaml.safe_load((DEPLOY / "operator.yaml").read_text())
    deployment["spec"]["replicas"] = 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = OPERATOR_IMAGE
    container["imagePullPolicy"] = "IfNotPresent"
    for namespace in E2E_NAMESPACES:
        container["args"] += ["--namespace", namespace]
    return deployment


def _operator_pods() -> list[dict[str, Any]]:
    out = _kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=items-operator",
        "-o",
        "json",
    )
    pods: list[dict[str, Any]] = json.loads(out)["items"]
    return pods


@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    """The operator running in the cluster, the shared database, and the test images."""
    _require_cluster()
    started = time.monotonic()
    _install_crds()
    password = secrets.token_hex(12)
    ours = (OPERATOR_NAMESPACE, DB_NAMESPACE, *E2E_NAMESPACES)

    def none_terminating() -> bool:  # left by an earlier run on a kept cluster
        out = _kubectl(
            "get",
            "namespaces",
            "-o",
            'jsonpath={range .items[?(@.status.phase=="Terminating")]}{.metadata.name} {end}',
        )
        return not set(out.split()) & set(ours)

    wait_until("namespaces of an earlier run to be gone", none_terminating, 180)
    _apply(*(restricted_namespace(n) for n in ours))
    _apply(*database_manifests(password, namespace=DB_NAMESPACE))
    # Built and loaded while the database starts.
    images = ImageSet.build_and_load(base=V1, folder=Path(__file__).parent / "images")
    _apply(
        *_rbac_manifests(),
        *(_workloads_binding(n) for n in E2E_NAMESPACES),
        yaml.safe_load((DEPLOY / "peering.yaml").read_text()),
    )
    _apply(_operator_deployment())
    database = Database(DB_NAMESPACE, password)
    database.wait_ready(timeout=180)

    def operator_running() -> bool:
        return any(
            all(s.get("ready") for s in p.get("status", {}).get("containerStatuses") or [{}])
            and p["status"].get("phase") == "Running"
            for p in _operator_pods()
        )

    wait_until("the operator pod to run", operator_running, 120, _operator_diagnostics)
    print(f"\ne2e setup (images, database, operator) took {time.monotonic() - started:.0f}s")
    env = E2E(images=images, database=database, operator_pods=_operator_pods)
    try:
        yield env
    finally:
        # ItemServices first, while the operator can still remove its finalizer.
        for namespace in E2E_NAMESPACES:
            subprocess.run(
                [KUBECTL, "-n", namespace, "delete", "itemservices", "--all", "--timeout=60s"],
                capture_output=True,
                timeout=90,
                check=False,
            )
        for namespace in (*E2E_NAMESPACES, DB_NAMESPACE, OPERATOR_NAMESPACE):
            delete_namespace(namespace)


@pytest.fixture(scope="module")
def two_operators(e2e: E2E) -> Iterator[None]:
    """The operator Deployment at two replicas (one leads, one stands by) for the module, then
    back at one: the other e2e modules expect a single operator pod."""
    operator = operator_kube()
    operator.run("scale", "deployment/items-operator", "--replicas=2")
    wait_until("two operator pods", lambda: len(ready_operator_pods(e2e)) == 2, 120)
    try:
        yield
    finally:
        operator.run("scale", "deployment/items-operator", "--replicas=1", check=False)
        wait_until("one operator pod", lambda: len(ready_operator_pods(e2e)) == 1, 120)


def _operator_diagnostics() -> str:
    result = subprocess.run(
        [KUBECTL, "-n", OPERATOR_NAMESPACE, "get", "pods,deployments,events", "-o", "wide"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    logs = subprocess.run(
        [KUBECTL, "-n", OPERATOR_NAMESPACE, "logs", "deployment/items-operator", "--tail=40"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr + logs.stdout + logs.stderr
