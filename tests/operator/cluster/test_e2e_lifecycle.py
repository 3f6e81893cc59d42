"""The operator in the cluster: a missing Secret, a spec change in the middle of a migration, an
operator restart in the middle of a migration, and an invalid ItemService refused by the API
server. The tests run in file order; `orders` is shared by the first two."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.kube_support import Kubectl, wait_until
from tests.operator.cluster.e2e import (
    E2E,
    LIFECYCLE_NAMESPACE,
    OPERATOR_NAMESPACE,
    V1,
    Cluster,
    image_of,
    item_service,
    job_finished_at,
    parse_time,
    runs,
    secret,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(e2e: E2E) -> Iterator[Cluster]:
    cluster = Cluster(Kubectl(LIFECYCLE_NAMESPACE))
    yield cluster
    cluster.kube.run("delete", "itemservices", "--all", "--timeout=60s", check=False)


def test_missing_secret_is_reported_then_recovers(cluster: Cluster, e2e: E2E) -> None:
    cluster.kube.apply(item_service("orders", V1, "orders-db"))
    status = cluster.wait_phase("orders", "Degraded", 30)
    progressing = cluster.condition("orders", "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "SecretNotFound")
    assert f"{LIFECYCLE_NAMESPACE}/orders-db" in progressing["message"]
    assert "orders-db" in status["message"]
    assert not cluster.jobs("orders")
    reasons = {e["reason"] for e in cluster.events("orders")}
    assert "SecretNotFound" in reasons

    cluster.kube.apply(secret("orders-db", e2e.database.create("e2e_orders")))
    status = cluster.wait_phase("orders", "Available", 150, image=V1)
    assert status["currentImage"] == V1
    assert cluster.condition("orders", "Progressing")["reason"] == "RolloutComplete"


def test_spec_change_mid_migration_latest_wins_one_job_at_a_time(
    cluster: Cluster, e2e: E2E
) -> None:
    slow, v2 = e2e.images.slow_migration, e2e.images.v2
    most_active: list[list[str]] = []

    def sample() -> None:
        active = cluster.active_jobs("orders")
        most_active.append(active)
        assert len(active) <= 1, f"two migration Jobs at once: {active}"

    cluster.set_image("orders", slow)

    def slow_migration_running() -> bool:
        sample()
        job = cluster.job("orders", slow)
        return bool(job and job.get("status", {}).get("ready"))

    wait_until(
        "the slow migration's pod to run",
        slow_migration_running,
        60,
        lambda: cluster.describe("orders"),
    )
    cluster.set_image("orders", v2)
    waiting = cluster.wait_phase("orders", "Migrating", 20, image=v2, also=sample)
    assert "waiting for superseded migration Job" in waiting["message"]

    status = cluster.wait_phase("orders", "Available", 150, image=v2, also=sample)
    assert status["currentImage"] == status["lastGoodImage"] == v2
    # The superseded image was never rolled out; its Job ran to the end, then v2's started.
    assert not [rs for rs in cluster.replica_sets("orders") if runs(image_of(rs), slow)]
    old, new = cluster.job("orders", slow), cluster.job("orders", v2)
    assert old is not None
    assert new is not None
    assert job_finished_at(old) <= parse_time(new["metadata"]["creationTimestamp"])
    assert "Complete" in {c["type"] for c in old["status"]["conditions"]}
    outcomes = {h["image"]: h.get("outcome") for h in status["history"]}
    assert outcomes[slow] == "Superseded"
    assert outcomes[v2] == "Available"


def _restart_operator(cluster: Cluster, e2e: E2E, name: str) -> None:
    """Delete the operator's pod (SIGTERM) and wait until its replacement runs."""
    old_pods = {p["metadata"]["name"] for p in e2e.operator_pods()}
    Kubectl(OPERATOR_NAMESPACE).run(
        "delete", "pod", "-l", "app.kubernetes.io/name=items-operator", "--wait=false"
    )

    def new_operator_running() -> bool:
        return any(
            p["metadata"]["name"] not in old_pods
            and p["status"].get("phase") == "Running"
            and "deletionTimestamp" not in p["metadata"]
            for p in e2e.operator_pods()
        )

    wait_until("a new operator pod", new_operator_running, 90, lambda: cluster.describe(name))


def test_operator_restarts_mid_migration_and_mid_rollout_resume_without_duplicates(
    cluster: Cluster, e2e: E2E
) -> None:
    slow = e2e.images.slow_migration
    cluster.kube.apply(secret("billing-db", e2e.database.create("e2e_billing")))
    # The first readiness probe only after 12 s: a rollout window long enough to restart in.
    manifest = item_service("billing", slow, "billing-db")
    manifest["spec"]["probes"]["readiness"]["initialDelaySeconds"] = 12
    manifest["spec"]["rollout"]["readinessTimeoutSeconds"] = 60
    cluster.kube.apply(manifest)

    def migration_running() -> dict[str, Any] | None:
        job = cluster.job("billing", slow)
        return job if job and job.get("status", {}).get("ready") else None

    job = wait_until(
        "billing's migration pod to run", migration_running, 60, lambda: cluster.describe("billing")
    )
    _restart_operator(cluster, e2e, "billing")
    assert cluster.active_jobs("billing") == [job["metadata"]["name"]], "restarted too late"

    cluster.wait_phase("billing", "RollingOut", 90, image=slow)
    _restart_operator(cluster, e2e, "billing")
    assert not cluster.kube.get("deployment", "billing")["status"].get("readyReplicas")

    status = cluster.wait_phase("billing", "Available", 120, image=slow)
    jobs = cluster.jobs("billing")
    assert [j["metadata"]["uid"] for j in jobs] == [job["metadata"]["uid"]], json.dumps(
        [j["metadata"] for j in jobs]
    )
    assert [runs(image_of(rs), slow) for rs in cluster.replica_sets("billing")] == [True]
    assert status["currentImage"] == status["lastGoodImage"] == slow
    assert [(h["image"], h["outcome"]) for h in status["history"]] == [(slow, "Available")]
    reasons = [e["reason"] for e in cluster.events("billing")]
    assert reasons.count("Migrating") == 1, reasons
    assert reasons.count("RollingOut") == 1, reasons


def test_invalid_item_service_is_refused_with_the_cel_message(cluster: Cluster) -> None:
    manifest = item_service("latest", "items-service:latest", "orders-db")
    result = cluster.kube.run("apply", "-f", "-", stdin=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "'latest' is not allowed" in result.stderr
    assert cluster.kube.run("get", "itemservice", "latest", check=False).returncode != 0
