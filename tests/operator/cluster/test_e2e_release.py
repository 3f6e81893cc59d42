"""Releases on a real cluster, under the perturbations of issue #10: a release is the whole pod
template (image and env roll back together), the verdict blames only the release (a database
outage or capacity never does), and the status is something `kubectl wait` can trust.

One ItemService, `cart`, through the tests in file order; each test says the state it leaves.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.kube_support import KUBECTL, Kubectl, wait_until
from tests.operator.cluster.e2e import (
    DB_NAMESPACE,
    E2E,
    READINESS_TIMEOUT,
    RELEASE_NAMESPACE,
    V1,
    Cluster,
    item_service,
    runs,
    secret,
)
from tests.operator.cluster.pod_signals import frozen

pytestmark = pytest.mark.cluster

NAME = "cart"
FEATURE = {"name": "FEATURE", "value": "on"}


@pytest.fixture(scope="module")
def cart(e2e: E2E) -> Iterator[Cluster]:
    kube = Kubectl(RELEASE_NAMESPACE)
    cluster = Cluster(kube)
    kube.apply(secret("cart-db", e2e.database.create("e2e_cart")))
    kube.apply(item_service(NAME, V1, "cart-db"))
    yield cluster
    kube.run("delete", "itemservice", NAME, "--ignore-not-found", "--timeout=60s", check=False)


def _patch(cart: Cluster, spec: dict[str, Any]) -> None:
    cart.kube.run("patch", "itemservice", NAME, "--type=merge", "-p", json.dumps({"spec": spec}))


def _wait_available(timeout: int) -> float:
    """`kubectl wait --for=condition=Available`, as docs/operator.md tells users; seconds."""
    started = time.monotonic()
    subprocess.run(
        [
            KUBECTL,
            "-n",
            RELEASE_NAMESPACE,
            "wait",
            "--for=condition=Available",
            f"--timeout={timeout}s",
            f"itemservice/{NAME}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        check=True,
    )
    return time.monotonic() - started


def _template(cart: Cluster) -> dict[str, Any]:
    template: dict[str, Any] = cart.kube.get("deployment", NAME)["spec"]["template"]
    return template


def _env_names(template: dict[str, Any]) -> set[str]:
    return {e["name"] for e in template["spec"]["containers"][0].get("env") or []}


def _live_pods(cart: Cluster) -> list[dict[str, Any]]:
    return [
        p
        for p in cart.server_pods(NAME)
        if "deletionTimestamp" not in p["metadata"] and p["status"].get("phase") == "Running"
    ]


def test_wait_for_available_returns_only_once_the_new_release_serves(
    cart: Cluster, e2e: E2E
) -> None:
    _wait_available(150)
    assert cart.status(NAME)["currentImage"] == V1
    v2 = e2e.images.v2
    _patch(cart, {"image": v2})
    seconds = _wait_available(150)  # right after the change: must not return on v1's status
    print(f"\nkubectl wait --for=condition=Available returned {seconds:.1f}s after the change")
    status = cart.status(NAME)
    assert status["currentImage"] == status["lastGoodImage"] == v2
    assert runs(cart.deployment_image(NAME), v2)
    pods = _live_pods(cart)
    assert pods
    assert all(runs(p["spec"]["containers"][0]["image"], v2) for p in pods)
    assert all(
        c["observedGeneration"] == cart.kube.get("itemservice", NAME)["metadata"]["generation"]
        for c in status["conditions"]
    )
    # state left: v2 serves (revision 2)


def test_image_and_env_together_roll_back_together(cart: Cluster, e2e: E2E) -> None:
    v2, bad = e2e.images.v2, e2e.images.never_ready
    before = _template(cart)
    old_pods = {p["metadata"]["uid"] for p in _live_pods(cart)}
    restarted_early: list[str] = []

    def sample() -> None:
        job = cart.job(NAME, bad)
        migrated = job is not None and job.get("status", {}).get("succeeded")
        if not migrated:
            template = _template(cart)
            if template != before:
                restarted_early.append("template changed before the migration")
            if {p["metadata"]["uid"] for p in _live_pods(cart)} != old_pods:
                restarted_early.append("serving pods replaced before the migration")

    _patch(cart, {"image": bad, "env": [{"name": "ITEMS_WORKERS", "value": "1"}, FEATURE]})
    status = cart.wait_phase(NAME, "RolledBack", READINESS_TIMEOUT + 150, image=bad, also=sample)
    assert not restarted_early, restarted_early
    after = _template(cart)
    assert after == before, "the rollback restores the last good release whole"
    assert "FEATURE" not in _env_names(after)
    assert status["currentImage"] == v2
    assert status["history"][-1]["reason"] == "ReadinessTimeout"
    wait_until(
        "only v2 pods without FEATURE",
        lambda: (
            all(
                "FEATURE" not in _env_names(p) and runs(p["spec"]["containers"][0]["image"], v2)
                for p in _live_pods(cart)
            )
            and _live_pods(cart)
        ),
        90,
        lambda: cart.describe(NAME),
    )
    # state left: v2 serves; the spec names the never-ready release (blocked)


def test_a_refused_service_change_never_blocks_the_rollback(cart: Cluster, e2e: E2E) -> None:
    v2, bad = e2e.images.v2, e2e.images.crashloop
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-node-ports"},
        "spec": {"hard": {"services.nodeports": "0"}},
    }
    cart.kube.apply(quota)
    try:
        _patch(cart, {"image": bad, "service": {"type": "NodePort"}})
        status = cart.wait_phase(NAME, "RolledBack", 150, image=bad)
        assert runs(cart.deployment_image(NAME), v2)
        refused = status.get("refusedWrites") or []
        assert any(
            r["object"] == f"Service/{NAME}" and r["reason"] == "QuotaExceeded" for r in refused
        ), refused
        assert cart.kube.get("service", NAME)["spec"]["type"] == "ClusterIP"
        warnings = {e["reason"] for e in cart.events(NAME) if e["type"] == "Warning"}
        assert "QuotaExceeded" in warnings
    finally:
        _patch(cart, {"service": {"type": "ClusterIP"}})
        cart.kube.run("delete", "resourcequota", "no-node-ports", check=False)
    wait_until(
        "refusals cleared",
        lambda: not cart.status(NAME).get("refusedWrites"),
        60,
        lambda: cart.describe(NAME),
    )
    # state left: v2 serves; the spec names the crash-looping release (blocked)


def test_zero_replicas_proves_nothing_and_scale_up_of_a_crash_loop_rolls_back(
    cart: Cluster, e2e: E2E
) -> None:
    v2, bad = e2e.images.v2, e2e.images.crash
    _patch(cart, {"image": bad, "env": [{"name": "ITEMS_WORKERS", "value": "1"}], "replicas": 0})
    status = cart.wait_phase(NAME, "ScaledToZero", 150, image=bad)
    assert status["lastGoodImage"] == v2, "an image is proven only by ready pods of it"
    assert runs(cart.deployment_image(NAME), bad)
    _patch(cart, {"replicas": 1})
    status = cart.wait_phase(NAME, "RolledBack", 120, image=bad)
    # A crash with no report: the kubelet's back-off after the first exit, or the same exit
    # code twice, whichever the operator saw first (both roll back at once).
    assert status["history"][-1]["reason"] in ("CrashLoopBackOff", "RepeatedExitCode")
    assert runs(cart.deployment_image(NAME), v2)
    assert cart.kube.get("deployment", NAME)["spec"]["replicas"] == 1
    # state left: v2 serves, one replica; the spec names the crashing release (blocked)


def test_a_deleted_deployment_comes_back_on_the_release_that_should_serve(
    cart: Cluster, e2e: E2E
) -> None:
    v2 = e2e.images.v2
    before = _template(cart)
    cart.kube.run("delete", "deployment", NAME, "--wait=true", "--timeout=60s")

    def back() -> bool:
        found = cart.kube.run("get", "deployment", NAME, check=False)
        return found.returncode == 0 and _template(cart) == before

    wait_until("the Deployment re-created on v2's release", back, 60, lambda: cart.describe(NAME))
    wait_until(
        "a ready v2 pod",
        lambda: any(
            runs(p["spec"]["containers"][0]["image"], v2)
            and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
            for p in _live_pods(cart)
        ),
        90,
        lambda: cart.describe(NAME),
    )
    assert cart.status(NAME)["phase"] == "RolledBack"
    # state left: as before


def test_paused_mid_rollout_pauses_the_deployment_and_the_verdict(cart: Cluster, e2e: E2E) -> None:
    v2 = e2e.images.v2
    # A good release (v2, no schema change) whose pods take 10 s to become ready.
    _patch(
        cart,
        {
            "image": v2,
            "probes": {
                "readiness": {"initialDelaySeconds": 10, "periodSeconds": 2, "failureThreshold": 1}
            },
        },
    )
    cart.wait_phase(NAME, "RollingOut", 60, image=v2)
    _patch(cart, {"paused": True})
    cart.wait_phase(NAME, "Paused", 30, image=v2)
    assert cart.kube.get("deployment", NAME)["spec"].get("paused") is True

    def still_paused() -> None:
        status = cart.status(NAME)
        assert status["phase"] == "Paused", status["message"]
        assert "failedRelease" not in status or status.get("failedImage") != v2

    cart.hold(READINESS_TIMEOUT + 5, still_paused)
    _patch(cart, {"paused": False})
    status = cart.wait_phase(NAME, "Available", 90, image=v2)
    assert (
        "paused" not in cart.kube.get("deployment", NAME)["spec"]
        or not cart.kube.get("deployment", NAME)["spec"]["paused"]
    )
    assert status.get("failedImage") != v2
    # state left: v2 (10 s readiness delay) serves and is proven


def test_a_database_outage_during_a_good_rollout_holds_then_completes(
    cart: Cluster, e2e: E2E
) -> None:
    v2 = e2e.images.v2
    _patch(
        cart,
        {"env": [{"name": "ITEMS_WORKERS", "value": "1"}, {"name": "RELEASE", "value": "outage"}]},
    )
    cart.wait_phase(NAME, "RollingOut", 60, image=v2)
    template = _template(cart)
    db = Kubectl(DB_NAMESPACE)
    db_pod = json.loads(db.run("get", "pods", "-l", "app=items-db", "-o", "json").stdout)["items"][
        0
    ]["metadata"]["name"]
    reasons: set[str] = set()
    with frozen(db, db_pod):
        deadline = time.monotonic() + READINESS_TIMEOUT * 2
        while time.monotonic() < deadline:  # longer than the window, bounded
            status = cart.status(NAME)
            reasons.add(str(status.get("reason")))
            assert _template(cart) == template, (
                "rolled back for the database's outage: "
                f"{json.dumps(status.get('history', [])[-1:])}\n{cart.describe(NAME)}"
            )
            assert status["phase"] in ("RollingOut", "Available"), status["message"]
            time.sleep(1)
    assert "DependencyUnavailable" in reasons, reasons
    status = cart.wait_phase(NAME, "Available", 120, image=v2)
    assert _template(cart) == template
    assert "failedRelease" not in status or status["failedRelease"] != status["targetRelease"]
    cart.serves(NAME)
    # state left: the outage release serves


def test_rollback_to_a_named_revision(cart: Cluster, e2e: E2E) -> None:
    cart.kube.run("annotate", "itemservice", NAME, "items.platform.dev/rollback-to=1")
    wait_until(
        "revision 1 serves on request",
        lambda: (
            cart.status(NAME).get("reason") == "RollbackRequested"
            and runs(cart.deployment_image(NAME), V1)
        ),
        60,
        lambda: cart.describe(NAME),
    )
    cart.kube.run("annotate", "itemservice", NAME, "items.platform.dev/rollback-to-")
    status = cart.wait_phase(NAME, "Available", 90, image=e2e.images.v2)
    assert status["currentRevision"] == status["targetRevision"]
