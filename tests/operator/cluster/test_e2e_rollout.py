"""The operator in the cluster, one ItemService through its life: v1 → v2 (migration first), then
images that cannot serve (never ready, crash loop, not pullable, failing migration), each leaving
v2 serving, and finally deletion (children garbage-collected, the database untouched).

The tests run in file order and share the ItemService `shop`; each starts from "v2 serves".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from service import schema
from tests.cluster.kube_support import Kubectl, port_forward, wait_until
from tests.operator.cluster.e2e import (
    E2E,
    MISSING_IMAGE,
    OPERATOR_NAMESPACE,
    READINESS_TIMEOUT,
    ROLLOUT_NAMESPACE,
    V1,
    Cluster,
    image_of,
    item_service,
    job_finished_at,
    metric_total,
    parse_time,
    runs,
    secret,
)

pytestmark = pytest.mark.cluster

NAME = "shop"
DATABASE = "e2e_shop"


@pytest.fixture(scope="module")
def shop(e2e: E2E) -> Iterator[Cluster]:
    """ItemService `shop` at v1, Available, with its own database."""
    kube = Kubectl(ROLLOUT_NAMESPACE)
    cluster = Cluster(kube)
    kube.apply(secret("shop-db", e2e.database.create(DATABASE)))
    kube.apply(item_service(NAME, V1, "shop-db"))
    cluster.wait_phase(NAME, "Available", 150, image=V1)
    yield cluster
    kube.run("delete", "itemservice", NAME, "--ignore-not-found", "--timeout=60s", check=False)


def _events(cluster: Cluster) -> dict[str, list[str]]:
    by_reason: dict[str, list[str]] = {}
    for event in cluster.events(NAME):
        by_reason.setdefault(event["reason"], []).append(event["message"])
    return by_reason


def test_first_image_is_migrated_then_serves(shop: Cluster, e2e: E2E) -> None:
    status = shop.status(NAME)
    assert status["currentImage"] == status["lastGoodImage"] == V1
    assert status["readyReplicas"] == 1
    head = schema.known_revisions().head
    assert e2e.database.sql("SELECT version_num FROM alembic_version", DATABASE) == head


def test_v2_migrates_before_any_v2_pod_exists(shop: Cluster, e2e: E2E) -> None:
    v2 = e2e.images.v2
    seen_v2_pods_while_migrating: list[str] = []

    def sample() -> None:
        job = shop.job(NAME, v2)
        done = job is not None and job.get("status", {}).get("completionTime")
        if not done:
            seen_v2_pods_while_migrating.extend(
                p["metadata"]["name"]
                for p in shop.server_pods(NAME)
                if runs(p["spec"]["containers"][0]["image"], v2)
            )

    shop.set_image(NAME, v2)
    status = shop.wait_phase(NAME, "Available", 150, image=v2, also=sample)

    assert not seen_v2_pods_while_migrating
    job = shop.job(NAME, v2)
    assert job is not None
    migrated = job_finished_at(job)
    v2_sets = [rs for rs in shop.replica_sets(NAME) if runs(image_of(rs), v2)]
    v2_pods = [p for p in shop.server_pods(NAME) if runs(p["spec"]["containers"][0]["image"], v2)]
    assert v2_sets
    assert v2_pods
    # Server timestamps (second precision): the Job completed before the first v2 object.
    for obj in (*v2_sets, *v2_pods):
        assert parse_time(obj["metadata"]["creationTimestamp"]) >= migrated, obj["metadata"]
    assert e2e.database.sql("SELECT version_num FROM alembic_version", DATABASE) == "e2e0003"
    shop.serves(NAME)

    assert status["currentImage"] == status["lastGoodImage"] == status["targetImage"] == v2
    assert status["migrationJob"] == job["metadata"]["name"]
    assert "failedImage" not in status
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "Available": ("True", "RolloutComplete"),
        "Ready": ("True", "RolloutComplete"),
        "Progressing": ("False", "RolloutComplete"),
        "Reconciling": ("False", "RolloutComplete"),
        "Degraded": ("False", "RolloutComplete"),
        "Stalled": ("False", "RolloutComplete"),
        "MigrationBlocked": ("False", "RolloutComplete"),
    }
    assert all(
        c["observedGeneration"] == status["observedGeneration"] for c in status["conditions"]
    )
    history = [(h["image"], h.get("outcome")) for h in status["history"]]
    assert history[-2:] == [(V1, "Available"), (v2, "Available")]
    assert [h["revision"] for h in status["history"][-2:]] == [1, 2]
    assert status["currentRevision"] == status["lastGoodRevision"] == 2
    newest = status["history"][-1]
    assert newest["migrationJob"] == job["metadata"]["name"]
    assert job_finished_at(job) <= parse_time(newest["rolledOutAt"])
    assert {"Migrating", "RollingOut", "RolloutComplete"} <= set(_events(shop))
    # Each release is stored whole, as a ControllerRevision the rollback restores.
    revisions = shop.items("controllerrevisions", f"app.kubernetes.io/instance={NAME}")
    assert sorted(r["revision"] for r in revisions) == [1, 2]


def test_steady_state_makes_no_writes(shop: Cluster, e2e: E2E) -> None:
    """Woken on a settled ItemService, the operator reads and decides, and writes nothing."""
    pod = next(p for p in e2e.operator_pods() if "deletionTimestamp" not in p["metadata"])
    children = "deployment,service,serviceaccount"

    def versions() -> str:
        return shop.kube.run(
            "get",
            children,
            "-l",
            f"app.kubernetes.io/instance={NAME}",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.resourceVersion} {end}",
        ).stdout

    def settled() -> bool:  # the old pod gone too, so nothing the status shows can still move
        pods = shop.server_pods(NAME)
        return len(pods) == 1 and all(
            c.get("ready") for c in pods[0].get("status", {}).get("containerStatuses") or [{}]
        )

    wait_until("only the v2 pod left", settled, 90, lambda: shop.describe(NAME))
    operator = Kubectl(OPERATOR_NAMESPACE)
    with port_forward(operator, f"pod/{pod['metadata']['name']}", 9090) as metrics:

        def totals() -> tuple[float, float]:
            text = metrics.get("/metrics").text
            return (
                metric_total(text, "items_operator_reconciles_total"),
                metric_total(text, "items_operator_writes_total"),
            )

        before_status, before_children = shop.status(NAME), versions()
        reconciles, writes = totals()

        def woken(passes: float) -> Callable[[], bool]:
            return lambda: totals()[0] >= passes

        for poke in range(1, 4):
            shop.kube.run("annotate", "itemservice", NAME, f"e2e/poke={poke}", "--overwrite")
            wait_until(f"reconcile pass {poke} after a poke", woken(reconciles + poke), 15)
        assert totals()[1] == writes
    assert shop.status(NAME) == before_status
    assert versions() == before_children


def test_never_ready_image_is_rolled_back_within_the_window(shop: Cluster, e2e: E2E) -> None:
    v2, bad = e2e.images.v2, e2e.images.never_ready
    shop.set_image(NAME, bad)

    def bad_pod_created() -> datetime | None:
        pods = [p for p in shop.server_pods(NAME) if runs(p["spec"]["containers"][0]["image"], bad)]
        return parse_time(pods[0]["metadata"]["creationTimestamp"]) if pods else None

    created = wait_until(
        "a pod of the never-ready image", bad_pod_created, 90, lambda: shop.describe(NAME)
    )
    wait_until(
        "the Deployment back on v2",
        lambda: runs(shop.deployment_image(NAME), v2),
        READINESS_TIMEOUT + 30,
        lambda: shop.describe(NAME),
    )
    latency = (datetime.now(UTC) - created).total_seconds()
    print(
        f"\nrollback of a never-ready pod: {latency:.1f}s after its creation "
        f"(readinessTimeoutSeconds {READINESS_TIMEOUT})"
    )
    # Not before the window (counted from the container's start, a second or two after the
    # pod's creation here), and at most a few seconds after it.
    assert READINESS_TIMEOUT - 1 <= latency <= READINESS_TIMEOUT + 12

    status = shop.wait_phase(NAME, "RolledBack", 30, image=bad)
    assert status["currentImage"] == status["lastGoodImage"] == v2
    assert status["failedImage"] == bad
    assert status["reason"] == "RolledBack"
    assert status["history"][-1]["reason"] == "ReadinessTimeout"
    assert f"not ready within its {READINESS_TIMEOUT}s window" in status["history"][-1]["message"]
    degraded, available = shop.condition(NAME, "Degraded"), shop.condition(NAME, "Available")
    assert (degraded["status"], available["status"]) == ("True", "False")
    assert bad in degraded["message"]
    assert bad in status["message"]
    assert "not retried" in status["message"]
    assert status["history"][-1]["image"] == bad
    assert status["history"][-1]["outcome"] == "RolledBack"
    # Posted once, on the transition (not on every pass since).
    rollbacks = [
        e for e in shop.events(NAME) if e["reason"] == "RolledBack" and bad in e["message"]
    ]
    assert sum(e.get("count") or 1 for e in rollbacks) == 1, rollbacks
    assert rollbacks[0]["type"] == "Warning"

    # Not retried while spec.image still names it: the Deployment stays on v2.
    def still_on_v2() -> None:
        assert runs(shop.deployment_image(NAME), v2)
        assert shop.status(NAME)["phase"] == "RolledBack"

    shop.kube.run("annotate", "itemservice", NAME, f"e2e/poke={time.time()}", "--overwrite")
    shop.hold(6, still_on_v2)
    wait_until(
        "the never-ready pods to be gone",
        lambda: (
            not [
                p for p in shop.server_pods(NAME) if runs(p["spec"]["containers"][0]["image"], bad)
            ]
        ),
        60,
        lambda: shop.describe(NAME),
    )
    assert shop.status(NAME)["readyReplicas"] == 1
    shop.serves(NAME)


def test_crashlooping_image_is_rolled_back(shop: Cluster, e2e: E2E) -> None:
    v2, bad = e2e.images.v2, e2e.images.crashloop
    started = time.monotonic()
    shop.set_image(NAME, bad)
    status = shop.wait_phase(NAME, "RolledBack", 120, image=bad)
    print(
        f"\ncrash-looping image rolled back {time.monotonic() - started:.1f}s after the spec "
        "change (migration included)"
    )
    assert runs(shop.deployment_image(NAME), v2)
    assert status["currentImage"] == v2
    assert status["failedImage"] == bad
    # The image's argument is invalid: the service says so in its termination log, and the
    # first exit counts (service/start_report.py), before any restart or back-off.
    assert status["history"][-1]["reason"] == "StartRefused", status["history"][-1]
    assert "--port: invalid int value" in status["history"][-1]["message"]
    # The migration itself succeeded: only serving failed.
    assert shop.job(NAME, bad) is not None
    assert any(bad in m for m in _events(shop).get("RolledBack", []))
    shop.serves(NAME)


def test_naming_the_good_image_again_clears_the_rollback(shop: Cluster, e2e: E2E) -> None:
    v2 = e2e.images.v2
    jobs_before = {j["metadata"]["uid"] for j in shop.jobs(NAME)}
    shop.set_image(NAME, v2)
    status = shop.wait_phase(NAME, "Available", 30, image=v2)
    assert "failedImage" not in status
    assert shop.condition(NAME, "Degraded")["status"] == "False"
    # v2 already serves: nothing to migrate or roll out again.
    assert {j["metadata"]["uid"] for j in shop.jobs(NAME)} <= jobs_before
    assert runs(shop.deployment_image(NAME), v2)


def test_missing_image_is_never_rolled_out(shop: Cluster, e2e: E2E) -> None:
    v2 = e2e.images.v2
    shop.set_image(NAME, MISSING_IMAGE)
    status = shop.wait_phase(NAME, "Failed", 90, image=MISSING_IMAGE)
    assert runs(shop.deployment_image(NAME), v2)
    assert status["currentImage"] == status["lastGoodImage"] == v2
    assert status["readyReplicas"] == 1
    assert not [rs for rs in shop.replica_sets(NAME) if runs(image_of(rs), MISSING_IMAGE)]
    message = status["message"]
    assert MISSING_IMAGE in message
    assert "ImagePullFailed" in message
    assert f"({v2}) keeps serving" in message
    assert status["migrationJob"] in message
    assert shop.condition(NAME, "Stalled")["reason"] == "MigrationFailed"
    shop.serves(NAME)


def test_failed_migration_changes_nothing(shop: Cluster, e2e: E2E) -> None:
    v2, bad = e2e.images.v2, e2e.images.migration_fails
    shop.set_image(NAME, bad)
    status = shop.wait_phase(NAME, "Failed", 120, image=bad)
    job = shop.job(NAME, bad)
    assert job is not None
    name = job["metadata"]["name"]
    assert status["migrationJob"] == name
    assert name in status["message"]
    assert f"kubectl logs job/{name}" in status["message"]
    condition = shop.condition(NAME, "Stalled")
    assert (condition["status"], condition["reason"]) == ("True", "MigrationFailed")
    assert name in condition["message"]
    assert any(name in m for m in _events(shop).get("MigrationFailed", []))
    # No rollout: v2 keeps serving, the schema did not move.
    assert runs(shop.deployment_image(NAME), v2)
    assert not [rs for rs in shop.replica_sets(NAME) if runs(image_of(rs), bad)]
    assert status["currentImage"] == v2
    assert status["readyReplicas"] == 1
    assert e2e.database.sql("SELECT version_num FROM alembic_version", DATABASE) == "e2e0003"
    logs = shop.kube.run("logs", f"job/{name}", check=False).stdout
    assert "fails on purpose" in logs

    # Six images so far: finished Jobs are pruned to migration.historyLimit, the target's kept.
    def jobs() -> list[str]:
        return [j["metadata"]["name"] for j in shop.jobs(NAME)]

    wait_until("finished Jobs pruned to 3", lambda: len(jobs()) == 3, 20, lambda: str(jobs()))
    assert name in jobs()
    shop.serves(NAME)


def test_deletion_collects_children_and_keeps_the_database(shop: Cluster, e2e: E2E) -> None:
    item = shop.serves(NAME)
    tables = e2e.database.sql("SHOW TABLES", DATABASE)
    assert "items" in tables.split()
    rows = e2e.database.sql("SELECT id, name FROM items ORDER BY id", DATABASE)
    assert f"{item['id']}\t{item['name']}" in rows
    shop.kube.run("delete", "itemservice", NAME, "--timeout=60s")

    def children_gone() -> bool:
        selector = f"app.kubernetes.io/instance={NAME}"
        out = shop.kube.run(
            "get",
            "deployments,replicasets,pods,jobs,services,serviceaccounts,poddisruptionbudgets,"
            "controllerrevisions",
            "-l",
            selector,
            "-o",
            "name",
        ).stdout
        return out.strip() == ""

    wait_until(
        "the garbage collector to remove every child",
        children_gone,
        90,
        lambda: shop.describe(NAME),
    )
    assert e2e.database.sql("SHOW TABLES", DATABASE) == tables
    assert e2e.database.sql("SELECT id, name FROM items ORDER BY id", DATABASE) == rows
    assert e2e.database.sql("SELECT version_num FROM alembic_version", DATABASE) == "e2e0003"
    assert shop.kube.run("get", "secret", "shop-db", check=False).returncode == 0


def test_operator_logged_no_errors(e2e: E2E) -> None:
    """Everything above ran without a failed request or an exception in the operator."""
    pods = [p for p in e2e.operator_pods() if "deletionTimestamp" not in p["metadata"]]
    assert len(pods) == 1
    logs = Kubectl(OPERATOR_NAMESPACE).run("logs", pods[0]["metadata"]["name"]).stdout
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert lines
    bad = [
        line
        for line in lines
        if line.get("level") in ("ERROR", "CRITICAL")
        or "API error" in line.get("message", "")
        or "Traceback" in line.get("message", "")
    ]
    assert not bad, json.dumps(bad, indent=1)[:4000]
    warnings = sorted({line["message"][:160] for line in lines if line.get("level") == "WARNING"})
    print(f"\noperator warnings ({len(warnings)} distinct):", *warnings, sep="\n  ")
