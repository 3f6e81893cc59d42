"""The Delivery issue's end-to-end stories, in order, on one Helm release and one ItemService:

1. the chart installs the operator; an ItemService at v1 migrates, rolls out, is Available and
   serves create/read/update/delete through its Service;
2. v2 (one more migration) migrates before any v2 pod exists; v1's data is intact;
3. v3 never becomes ready: rolled back to v2 within the readiness window plus a few seconds,
   while an in-cluster client going through the Service's ClusterIP sees no failed request;
4. v4's migration fails: no rollout, v2 keeps serving, status and events say why;
5. the operator's pod is deleted mid-rollout: the chart's Deployment starts a new one, which
   completes the rollout.

An in-cluster REST client (a pod running a bounded python3 loop against the Service's ClusterIP
by DNS name, GETs plus POSTs) runs through stories 2 to 5 and must see zero failed requests: in
2 and 5 the old pod is replaced, which is only lossless because the operator gives server pods
ITEMS_SHUTDOWN_DELAY_SECONDS (readiness false, still serving, while endpoints update).

The tests share state and run in file order; each starts from where the previous one left off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.cluster.kube_support import wait_until
from tests.e2e.conftest import Platform
from tests.e2e.platform import SERVICE_PORT, ClientLoop, Images, ReleaseCluster, client_pod
from tests.operator.cluster.e2e import (
    OPERATOR_IMAGE,
    image_of,
    item_service,
    job_finished_at,
    parse_time,
    runs,
    secret,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

NAME = "shop"
DATABASE = "e2e_shop"
READINESS_TIMEOUT = 20
# How long after the readiness window the Deployment must be back on the good image.
ROLLBACK_SLACK = 12


@dataclass
class Story:
    platform: Platform
    shop: ReleaseCluster
    item: dict[str, Any] = field(default_factory=dict)  # written under v1, read in every story

    @property
    def images(self) -> Images:
        return self.platform.images

    def url(self) -> str:
        """The Service by its cluster DNS name (port 80): kube-proxy spreads over ready pods."""
        return f"http://{NAME}.{self.platform.namespace}.svc.cluster.local:{SERVICE_PORT}"

    def client(self) -> ClientLoop:
        name = "e2e-client"
        pod = client_pod(name, self.images.v1, self.url(), deadline=240, item_id=self.item["id"])
        return ClientLoop(self.platform.kube, name, pod)

    def pods_of(self, image: str) -> list[dict[str, Any]]:
        return [p for p in self.shop.server_pods(NAME) if runs(image_of_pod(p), image)]

    def settle(self, image: str, timeout: float = 90) -> None:
        """Wait until every server pod runs `image`, is ready, and none is terminating (so a
        port-forward to the Service cannot pick an old pod)."""

        def settled() -> bool:
            pods = self.shop.server_pods(NAME)
            return bool(pods) and all(
                runs(image_of_pod(p), image)
                and "deletionTimestamp" not in p["metadata"]
                and all(
                    c.get("ready") for c in p.get("status", {}).get("containerStatuses") or [{}]
                )
                for p in pods
            )

        wait_until(
            f"only ready pods of {image}", settled, timeout, lambda: self.shop.describe(NAME)
        )

    def check_serving(self, schema: str) -> dict[str, Any]:
        """Through the Service: /readyz reports `schema`, and v1's item reads back unchanged."""
        with self.shop.http(NAME) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["schema"] == schema
            got = client.get(f"/items/{self.item['id']}")
            assert got.status_code == 200, got.text
            assert got.json() == self.item
            metrics = client.get("/metrics").text
        return {"metrics": metrics}

    def reasons(self) -> dict[str, list[str]]:
        by_reason: dict[str, list[str]] = {}
        for event in self.shop.events(NAME):
            by_reason.setdefault(event["reason"], []).append(event["message"])
        return by_reason


def image_of_pod(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"])


@pytest.fixture(scope="module")
def story(platform: Platform) -> Story:
    return Story(platform, platform.cluster)


def test_1_chart_installs_the_operator_and_v1_serves_crud(story: Story) -> None:
    platform, shop, v1 = story.platform, story.shop, story.images.v1
    # The chart's operator: one replica of the image asked for, watching its namespace only.
    pods = shop.operator_pods()
    assert len(pods) == 1
    container = pods[0]["spec"]["containers"][0]
    assert container["image"] == OPERATOR_IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    args = container["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == [platform.namespace]

    platform.kube.apply(secret("shop-db", platform.database.create(DATABASE)))
    manifest = item_service(NAME, v1, "shop-db")
    manifest["spec"]["rollout"]["readinessTimeoutSeconds"] = READINESS_TIMEOUT
    platform.kube.apply(manifest)
    status = shop.wait_phase(NAME, "Available", 180, image=v1)

    job = shop.job(NAME, v1)
    assert job is not None
    assert "Complete" in {c["type"] for c in job["status"]["conditions"] if c["status"] == "True"}
    for pod in story.pods_of(v1):
        assert parse_time(pod["metadata"]["creationTimestamp"]) >= job_finished_at(job)
    assert status["currentImage"] == status["lastGoodImage"] == v1
    assert platform.database.sql("SELECT version_num FROM alembic_version", DATABASE) == "0005"
    # The operator keeps terminating pods serving while endpoints update (stories 2 and 5).
    env = shop.kube.get("deployment", NAME)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ITEMS_SHUTDOWN_DELAY_SECONDS", "value": "5"} in env

    story.settle(v1)
    with shop.http(NAME) as client:
        assert client.get("/readyz").json()["checks"]["schema"] == "ok: at 0005"
        created = client.post(
            "/items/",
            json={
                "name": "e2e widget",
                "description": "written under v1",
                "price": 12.5,
                "in_stock": True,
            },
        )
        assert created.status_code == 201, created.text
        item = created.json()
        assert created.headers["Location"].endswith(f"/items/{item['id']}")
        read = client.get(f"/items/{item['id']}")
        assert (read.status_code, read.json()) == (200, item)
        patched = client.patch(
            f"/items/{item['id']}",
            json={"price": 13.75},
            headers={"If-Match": created.headers["ETag"]},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["price"] == 13.75
        assert patched.json()["version"] == item["version"] + 1
        stale = client.patch(
            f"/items/{item['id']}", json={"price": 1}, headers={"If-Match": created.headers["ETag"]}
        )
        assert stale.status_code == 412
        listing = client.get("/items/", params={"limit": 50})
        assert item["id"] in [i["id"] for i in listing.json()["data"]]
        doomed = client.post("/items/", json={"name": "e2e short-lived", "price": 1})
        assert doomed.status_code == 201
        deleted = client.delete(
            f"/items/{doomed.json()['id']}", headers={"If-Match": doomed.headers["ETag"]}
        )
        assert deleted.status_code == 204
        assert client.get(f"/items/{doomed.json()['id']}").status_code == 404
    story.item = patched.json()


def test_2_v2_migrates_before_any_v2_pod_exists_and_v1_data_is_intact(story: Story) -> None:
    """Our v2 test image only adds a migration (revision e2e0003, a marker table), no API field,
    so "v2 serves the new schema" is asserted as what the service reports: the /readyz schema
    check at the new head and items_schema_revision_info{revision="e2e0003",
    image_head="e2e0003"} 1, plus the revision in the database."""
    platform, shop, v2 = story.platform, story.shop, story.images.v2
    v2_pods_while_migrating: list[str] = []

    def sample() -> None:
        job = shop.job(NAME, v2)
        if not (job and job.get("status", {}).get("completionTime")):
            v2_pods_while_migrating.extend(p["metadata"]["name"] for p in story.pods_of(v2))

    loop = story.client()
    loop.start()
    shop.set_image(NAME, v2)
    status = shop.wait_phase(NAME, "Available", 180, image=v2, also=sample)
    story.settle(v2)
    counts = loop.stop()
    print(f"\nstory 2: client during v1 -> v2: {json.dumps(counts)}")
    assert counts["stopped"], "the client loop ended before the episode did"
    assert counts["failed"] == 0, counts["errors"]

    assert not v2_pods_while_migrating
    job = shop.job(NAME, v2)
    assert job is not None
    migrated = job_finished_at(job)
    v2_sets = [rs for rs in shop.replica_sets(NAME) if runs(image_of(rs), v2)]
    assert v2_sets
    for obj in (*v2_sets, *story.pods_of(v2)):  # server timestamps, second precision
        assert parse_time(obj["metadata"]["creationTimestamp"]) >= migrated, obj["metadata"]
    assert status["currentImage"] == status["lastGoodImage"] == v2
    assert [h["image"] for h in status["history"]][-2:] == [story.images.v1, v2]
    assert platform.database.sql("SELECT version_num FROM alembic_version", DATABASE) == "e2e0003"

    story.settle(v2)
    metrics = story.check_serving("ok: at e2e0003")["metrics"]
    assert re.search(
        r'^items_schema_revision_info\{[^}]*revision="e2e0003"[^}]*\} 1\.0$', metrics, re.M
    ), [line for line in metrics.splitlines() if "schema_revision" in line]
    assert 'image_head="e2e0003"' in metrics


def test_3_never_ready_v3_is_rolled_back_with_zero_failed_requests(story: Story) -> None:
    shop, v2, v3 = story.shop, story.images.v2, story.images.never_ready
    loop = story.client()
    loop.start()
    shop.set_image(NAME, v3)

    def v3_pod_created() -> datetime | None:
        pods = story.pods_of(v3)
        return parse_time(pods[0]["metadata"]["creationTimestamp"]) if pods else None

    created = wait_until("a pod of v3", v3_pod_created, 120, lambda: shop.describe(NAME))
    wait_until(
        "the Deployment back on v2",
        lambda: runs(shop.deployment_image(NAME), v2),
        READINESS_TIMEOUT + ROLLBACK_SLACK + 20,
        lambda: shop.describe(NAME),
    )
    latency = (datetime.now(UTC) - created).total_seconds()
    status = shop.wait_phase(NAME, "RolledBack", 30, image=v3)
    wait_until(
        "the v3 pods to be gone", lambda: not story.pods_of(v3), 60, lambda: shop.describe(NAME)
    )
    counts = loop.stop()
    print(
        f"\nstory 3: v3 rolled back {latency:.1f}s after its pod was created "
        f"(readinessTimeoutSeconds {READINESS_TIMEOUT}); client: {json.dumps(counts)}"
    )

    assert counts["stopped"], "the client loop ended before the episode did"
    assert counts["failed"] == 0, counts["errors"]
    assert counts["requests"] >= 100
    assert READINESS_TIMEOUT - 1 <= latency <= READINESS_TIMEOUT + ROLLBACK_SLACK
    assert status["currentImage"] == status["lastGoodImage"] == v2
    assert status["failedImage"] == v3
    assert status["reason"] == "RolledBack"
    assert status["history"][-1]["reason"] == "ReadinessTimeout"
    degraded = shop.condition(NAME, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    assert v3 in degraded["message"]
    assert any(v3 in m for m in story.reasons().get("RolledBack", []))
    story.settle(v2)
    story.check_serving("ok: at e2e0003")


def test_4_failed_v4_migration_rolls_nothing_out_and_v2_keeps_serving(story: Story) -> None:
    platform, shop = story.platform, story.shop
    v2, v4 = story.images.v2, story.images.migration_fails
    loop = story.client()
    loop.start()
    shop.set_image(NAME, v4)
    status = shop.wait_phase(NAME, "Failed", 150, image=v4)
    job = shop.job(NAME, v4)
    assert job is not None
    job_name = job["metadata"]["name"]

    def still_v2() -> None:
        assert runs(shop.deployment_image(NAME), v2)
        assert not [rs for rs in shop.replica_sets(NAME) if runs(image_of(rs), v4)]

    shop.hold(5, still_v2)
    counts = loop.stop()
    print(f"\nstory 4: client during the failed migration: {json.dumps(counts)}")
    assert counts["stopped"]
    assert counts["failed"] == 0, counts["errors"]

    assert status["migrationJob"] == job_name
    assert f"kubectl logs job/{job_name}" in status["message"]
    assert f"({v2}) keeps serving" in status["message"]
    assert status["currentImage"] == status["lastGoodImage"] == v2
    condition = shop.condition(NAME, "Stalled")
    assert (condition["status"], condition["reason"]) == ("True", "MigrationFailed")
    assert job_name in condition["message"]
    assert any(job_name in m for m in story.reasons().get("MigrationFailed", []))
    assert "fails on purpose" in shop.kube.run("logs", f"job/{job_name}", check=False).stdout
    assert platform.database.sql("SELECT version_num FROM alembic_version", DATABASE) == "e2e0003"
    story.check_serving("ok: at e2e0003")


def test_5_operator_pod_deleted_mid_rollout_the_new_one_completes_it(story: Story) -> None:
    """Rolls out v1's image again (the documented rollback by hand: v1 serves on the newer,
    compatible schema), with its first readiness probe 10 s late so the rollout is still open when
    the operator's pod is deleted."""
    shop, v1 = story.shop, story.images.v1
    before = {p["metadata"]["name"] for p in shop.operator_pods()}
    loop = story.client()
    loop.start()
    shop.kube.run(
        "patch",
        "itemservice",
        NAME,
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "image": v1,
                    "probes": {"readiness": {"initialDelaySeconds": 10}},
                    "rollout": {"readinessTimeoutSeconds": 60},
                }
            }
        ),
    )
    shop.wait_phase(NAME, "RollingOut", 120, image=v1)
    wait_until(
        "the Deployment on v1",
        lambda: runs(shop.deployment_image(NAME), v1),
        30,
        lambda: shop.describe(NAME),
    )
    job = shop.job(NAME, v1)
    assert job is not None
    shop.kube.run("delete", "pod", "-l", shop.operator_selector(), "--wait=false")
    assert not shop.kube.get("deployment", NAME)["status"].get("updatedReadyReplicas"), (
        "the rollout finished before the operator was restarted"
    )

    def new_operator_ready() -> bool:
        return any(
            p["metadata"]["name"] not in before
            and "deletionTimestamp" not in p["metadata"]
            and all(c.get("ready") for c in p.get("status", {}).get("containerStatuses") or [{}])
            for p in shop.operator_pods()
        )

    wait_until(
        "the chart's Deployment to run a new operator pod",
        new_operator_ready,
        120,
        lambda: shop.describe(NAME),
    )
    status = shop.wait_phase(NAME, "Available", 150, image=v1)
    assert status["currentImage"] == status["lastGoodImage"] == v1
    assert status["history"][-1]["image"] == v1
    assert status["history"][-1]["outcome"] == "Available"
    assert [
        j["metadata"]["uid"]
        for j in shop.jobs(NAME)
        if j["metadata"]["name"] == job["metadata"]["name"]
    ] == [job["metadata"]["uid"]]
    late_probe = [
        rs
        for rs in shop.replica_sets(NAME)
        if runs(image_of(rs), v1)
        and rs["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].get(
            "initialDelaySeconds"
        )
        == 10
    ]
    assert len(late_probe) == 1
    live = [p for p in shop.operator_pods() if "deletionTimestamp" not in p["metadata"]]
    assert len(live) == 1
    assert live[0]["metadata"]["name"] not in before
    story.settle(v1)
    counts = loop.stop()
    print(f"\nstory 5: client during the rollout and operator restart: {json.dumps(counts)}")
    assert counts["stopped"], "the client loop ended before the episode did"
    assert counts["failed"] == 0, counts["errors"]
    story.check_serving("ok: at e2e0003, newer than this image's 0005 (compatible)")
