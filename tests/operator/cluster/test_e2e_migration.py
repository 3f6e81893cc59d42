"""Migrations under disruption on a real cluster (issue #11): exactly one migrator whatever
happens to its pod, a deletion of the ItemService that lets the migration finish, and the bits
that migrated are the bits that serve even when the tag moves in between.

Every ItemService here runs the slow-migration image (`migrate` sleeps first, then migrates),
so the disruptions land while the migration runs. Each test has its own ItemService/database.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.kube_support import Kubectl, load_images, wait_until
from tests.operator.cluster.e2e import (
    E2E,
    MIGRATION_NAMESPACE,
    Cluster,
    item_service,
    retag_on_node,
    secret,
)
from tests.operator.cluster.migration_pods import Sampler, sleeping_pod

pytestmark = pytest.mark.cluster

SLEEP = {"name": "E2E_MIGRATION_SLEEP_SECONDS", "value": "12"}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster(Kubectl(MIGRATION_NAMESPACE))


def _start(cluster: Cluster, e2e: E2E, name: str, image: str) -> None:
    cluster.kube.apply(secret(f"{name}-db", e2e.database.create(f"e2e_{name}")))
    _apply_item_service(cluster, name, image)


def _apply_item_service(cluster: Cluster, name: str, image: str) -> None:
    body = item_service(name, image, f"{name}-db")
    body["spec"]["env"] = [*body["spec"]["env"], SLEEP]
    cluster.kube.apply(body)


def test_an_evicted_then_deleted_migration_pod_is_replaced_one_at_a_time(
    cluster: Cluster, e2e: E2E
) -> None:
    name = "ledger"
    _start(cluster, e2e, name, e2e.images.slow_migration)
    with Sampler(cluster, name) as sampler:
        first = sleeping_pod(cluster, name, besides=set())
        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": first, "namespace": MIGRATION_NAMESPACE},
        }
        cluster.kube.run(
            "create",
            "--raw",
            f"/api/v1/namespaces/{MIGRATION_NAMESPACE}/pods/{first}/eviction",
            "-f",
            "-",
            stdin=json.dumps(eviction),
        )
        second = sleeping_pod(cluster, name, besides={first})
        # A drain without the eviction API (or a person) deletes the pod: SIGTERM, exit 143.
        cluster.kube.run("delete", "pod", second, "--wait=false")
        sleeping_pod(cluster, name, besides={first, second})
        status = cluster.wait_phase(name, "Available", 180)
    print(f"\nmigration pods sampled {sampler.samples} times; at most {sampler.most} running")
    assert sampler.samples > 20
    assert sampler.most == 1, "two migration pods ran at once"
    job = cluster.job(name, e2e.images.slow_migration)
    assert job is not None
    assert job["status"].get("succeeded") == 1
    assert len(sampler.pods) == 3  # evicted, deleted, and the one that finished
    assert job["status"].get("failed", 0) == 0  # ignored by the podFailurePolicy: no backoff
    assert status["history"][-1]["outcome"] == "Available"
    cluster.serves(name)


def test_deleting_the_item_service_lets_its_migration_finish(cluster: Cluster, e2e: E2E) -> None:
    name = "orphan"
    image = e2e.images.slow_migration
    _start(cluster, e2e, name, image)
    pod = sleeping_pod(cluster, name, besides=set())
    # Foreground: the strictest cascade (dependents with blockOwnerDeletion go first).
    cluster.kube.run("delete", "itemservice", name, "--cascade=foreground", "--timeout=60s")
    wait_until(
        "the migration pod to finish on its own",
        lambda: cluster.kube.get("pod", pod)["status"].get("phase") in ("Succeeded", "Failed"),
        90,
        lambda: cluster.describe(name),
    )
    assert cluster.kube.get("pod", pod)["status"]["phase"] == "Succeeded"
    job = cluster.job(name, image)
    assert job is not None
    assert not job["metadata"].get("ownerReferences")
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # the orphan is collected later
    assert e2e.database.sql("SELECT version_num FROM alembic_version", f"e2e_{name}")
    # The same ItemService again: the finished migration is adopted, not run a second time.
    _apply_item_service(cluster, name, image)
    cluster.wait_phase(name, "Available", 120)
    jobs = cluster.jobs(name)
    assert [j["metadata"]["name"] for j in jobs] == [job["metadata"]["name"]]
    uid = cluster.kube.get("itemservice", name)["metadata"]["uid"]
    wait_until(
        "the Job to be adopted",
        lambda: (
            [r["uid"] for r in cluster.jobs(name)[0]["metadata"].get("ownerReferences") or []]
            == [uid]
        ),
        30,
        lambda: cluster.describe(name),
    )


def test_a_tag_moved_after_the_migration_does_not_change_what_serves(
    cluster: Cluster, e2e: E2E
) -> None:
    name = "pinned"
    repo = e2e.images.slow_migration.rsplit(":", 1)[0]
    moving = f"{repo}:e2e-moving-tag"
    subprocess.run(["docker", "tag", e2e.images.slow_migration, moving], check=True, timeout=60)
    load_images(moving)
    _start(cluster, e2e, name, moving)
    pod = sleeping_pod(cluster, name, besides=set())
    # The migration runs the slow-migration build; the tag now names a never-ready one.
    retag_on_node(e2e.images.never_ready, moving)
    status = cluster.wait_phase(name, "Available", 150)
    migrated = cluster.kube.get("pod", pod)["status"]["containerStatuses"][0]["imageID"]
    digest = migrated.rpartition("@")[2]
    assert digest.startswith("sha256:"), migrated
    assert cluster.deployment_image(name) == f"{repo}@{digest}"
    assert status["servingImage"] == f"{repo}@{digest}"
    assert status["targetImage"] == moving
    serving = [p for p in cluster.server_pods(name) if p["status"].get("phase") == "Running"]
    assert serving
    assert all(p["status"]["containerStatuses"][0]["imageID"] == migrated for p in serving)
    cluster.serves(name)


@pytest.fixture(autouse=True, scope="module")
def _cleanup(cluster: Cluster) -> Iterator[None]:
    yield
    for name in ("ledger", "orphan", "pinned"):
        cluster.kube.run(
            "delete", "itemservice", name, "--ignore-not-found", "--timeout=60s", check=False
        )
