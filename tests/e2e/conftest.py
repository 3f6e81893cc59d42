"""Fixture for the end-to-end stories (pytest -m cluster): one fresh namespace at the restricted
Pod Security level holding the Helm release of charts/items (the operator, watching only that
namespace), a database, and the test images.

Runs against the cluster named by KUBECONFIG (or kubectl's default config, as on kind); CI runs it
through hack/cluster/ci-smoke, GitHub through .github/workflows/e2e.yml. Every wait has a
deadline. Teardown deletes the ItemServices while the operator still runs (its finalizer), then
uninstalls the release (its cluster-scoped RBAC and peering object) and deletes the namespace.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.kube_support import (
    Kubectl,
    database_manifests,
    delete_namespace,
    restricted_namespace,
    wait_for_default_service_account,
    wait_until,
)
from tests.e2e.platform import (
    CHART,
    Images,
    ReleaseCluster,
    helm,
    split_image,
)
from tests.operator.cluster.e2e import OPERATOR_IMAGE, V1, Database


@dataclass
class Platform:
    namespace: str
    release: str
    kube: Kubectl
    cluster: ReleaseCluster
    database: Database
    images: Images


def _require_cluster() -> None:
    if os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().is_file():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but no cluster configured: run hack/cluster/ci-smoke")
    pytest.skip("KUBECONFIG unset: start a cluster with hack/local-cluster up")


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    _require_cluster()
    started = time.monotonic()
    suffix = secrets.token_hex(3)
    namespace, release = f"items-e2e-{suffix}", f"e2e-{suffix}"
    kube = Kubectl(namespace)
    kube.apply(restricted_namespace(namespace))
    installed = False
    cluster = ReleaseCluster(kube, release)
    try:
        wait_for_default_service_account(kube)
        password = secrets.token_hex(12)
        for manifest in database_manifests(password):
            kube.apply(manifest)
        images = Images.build_and_load(V1)  # while the database starts
        repository, tag = split_image(OPERATOR_IMAGE)
        installed = True
        helm(
            "install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "image.pullPolicy=IfNotPresent",
            "--set",
            "replicaCount=1",
            "--wait",
            "--timeout",
            "180s",
            timeout=240,
        )
        database = Database(namespace, password)
        # Ready by its TCP probe (the image's first-start initialisation answers only on the
        # socket), then logins work: a migration Job (backoffLimit 0) must not race it.
        kube.run("rollout", "status", "deployment/items-db", "--timeout=180s", timeout=200)
        database.wait_ready(timeout=60)
        wait_until(
            "the ItemService kind to be served",
            lambda: kube.run("get", "itemservices", check=False).returncode == 0,
            60,
        )
        print(
            f"\ne2e platform ({namespace}, release {release}) ready in "
            f"{time.monotonic() - started:.0f}s"
        )
        yield Platform(namespace, release, kube, cluster, database, images)
    finally:
        # ItemServices first, while the operator can still remove its finalizer.
        gone = kube.run("delete", "itemservices", "--all", "--timeout=60s", timeout=90, check=False)
        if gone.returncode != 0:
            for name in kube.run("get", "itemservices", "-o", "name", check=False).stdout.split():
                kube.run(
                    "patch",
                    name,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                    check=False,
                )
        if installed:
            helm(
                "uninstall",
                release,
                "--namespace",
                namespace,
                "--wait",
                "--timeout",
                "60s",
                timeout=90,
                check=False,
            )
        delete_namespace(namespace)
