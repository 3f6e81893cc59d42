"""The schema-aware rollback floor on a real cluster (issue #11, item 4).

Three test images (tests/operator/cluster/images): floor-v1 adds the table `e2e_legacy` and
reads it; floor-v2 has the same revisions but no longer reads it (the intermediate release);
floor-v3 adds a contract revision that drops it. One ItemService, `atlas`, through the tests in
file order; each test says the state it leaves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.kube_support import Kubectl
from tests.operator.cluster.e2e import E2E, MIGRATION_NAMESPACE, Cluster, item_service, secret

pytestmark = pytest.mark.cluster

NAME = "atlas"
DATABASE = "e2e_atlas"


@pytest.fixture(scope="module")
def atlas(e2e: E2E) -> Iterator[Cluster]:
    kube = Kubectl(MIGRATION_NAMESPACE)
    cluster = Cluster(kube)
    kube.apply(secret("atlas-db", e2e.database.create(DATABASE)))
    kube.apply(item_service(NAME, e2e.images.floor_v1, "atlas-db"))
    yield cluster
    kube.run("delete", "itemservice", NAME, "--ignore-not-found", "--timeout=60s", check=False)


def _legacy_table(e2e: E2E) -> str:
    return e2e.database.sql(
        "SELECT COUNT(*) FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = '{DATABASE}' AND TABLE_NAME = 'e2e_legacy'"
    )


def test_a_contract_revision_the_rollback_target_still_needs_is_refused(
    atlas: Cluster, e2e: E2E
) -> None:
    first = atlas.wait_phase(NAME, "Available", 150, image=e2e.images.floor_v1)
    template = atlas.kube.get("deployment", NAME)["spec"]["template"]
    atlas.set_image(NAME, e2e.images.floor_v3)
    status = atlas.wait_phase(NAME, "Failed", 120, image=e2e.images.floor_v3)
    assert status["reason"] == "MigrationBlocked", status["message"]
    assert atlas.condition(NAME, "MigrationBlocked")["status"] == "True"
    assert e2e.images.floor_v1 in status["message"]
    assert "e2e_legacy" in status["message"]
    assert "allow-contract" in status["message"]
    assert _legacy_table(e2e) == "1"  # nothing ran
    assert atlas.kube.get("deployment", NAME)["spec"]["template"] == template
    assert status["currentRevision"] == first["currentRevision"]
    # state left: floor-v1 serves; floor-v3's migration refused


def test_after_an_intermediate_release_the_contract_revision_runs(atlas: Cluster, e2e: E2E) -> None:
    atlas.set_image(NAME, e2e.images.floor_v2)
    v2 = atlas.wait_phase(NAME, "Available", 150, image=e2e.images.floor_v2)
    atlas.set_image(NAME, e2e.images.floor_v3)
    status = atlas.wait_phase(NAME, "Available", 150, image=e2e.images.floor_v3)
    assert atlas.condition(NAME, "MigrationBlocked")["status"] == "False"
    assert _legacy_table(e2e) == "0"  # the contract revision ran
    floor = status["rollbackFloor"]
    assert floor["revision"] == v2["currentRevision"], floor
    assert floor["image"] == e2e.images.floor_v2
    atlas.serves(NAME)
    # state left: floor-v3 serves; the floor is floor-v2's revision


def test_a_requested_rollback_below_the_floor_is_refused(atlas: Cluster, e2e: E2E) -> None:
    status = atlas.status(NAME)
    v1 = next(e["revision"] for e in status["history"] if e["image"] == e2e.images.floor_v1)
    atlas.kube.run("annotate", "itemservice", NAME, f"items.platform.dev/rollback-to={v1}")
    try:
        refused = atlas.wait_phase(NAME, "Degraded", 60)
        assert refused["reason"] == "RevisionBelowFloor", refused["message"]
        assert "e2e_legacy" in refused["message"]
        assert refused["currentRevision"] == status["currentRevision"]  # nothing changed
    finally:
        atlas.kube.run("annotate", "itemservice", NAME, "items.platform.dev/rollback-to-")
    atlas.wait_phase(NAME, "Available", 60, image=e2e.images.floor_v3)
    # state left: floor-v3 serves
