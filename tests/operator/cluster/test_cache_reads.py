"""--cache-reads on against the real API server: the operator runs in this process (Kopf's
KopfRunner, standalone, serving one namespace of its own), so its counters can be read.

A released ItemService (scaled to zero: no pod needed) is steady; passes woken by events then
make no request and no write; a deleted Service and a changed Secret are acted on within
seconds, through the watches, long before the resync.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.kube_support import (
    Kubectl,
    database_manifests,
    delete_namespace,
    restricted_namespace,
    wait_until,
)
from tests.operator.cluster.e2e import Database, item_service, secret
from tests.operator.cluster.in_process import counter_total, wait_settled

pytestmark = pytest.mark.cluster

NS = "items-cache-test"
IMAGE = os.environ.get("ITEMS_E2E_SERVICE_IMAGE", "items-service:dev")


@pytest.fixture(scope="module")
def kube(crds: None) -> Iterator[Kubectl]:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG unset: start a cluster with hack/local-cluster up")
    kube = Kubectl(NS)
    kube.run("apply", "-f", "-", stdin=json.dumps(restricted_namespace(NS)))
    yield kube
    delete_namespace(NS)


@pytest.fixture(scope="module")
def database_url(kube: Kubectl) -> str:
    password = secrets.token_hex(12)
    for manifest in database_manifests(password, namespace=NS):
        kube.apply(manifest)
    database = Database(NS, password)
    database.wait_ready(180)
    return database.create(f"cache_{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
def operator(kube: Kubectl) -> Iterator[None]:
    from items_operator import handlers
    from kopf.testing import KopfRunner

    handlers.read_from_caches(resync=600.0, concurrency=8, startup_rate=50.0, namespaces=[NS])
    args = ["run", "--standalone", "--namespace", NS, "-m", "items_operator.handlers"]
    try:
        with KopfRunner(args, timeout=60) as runner:
            yield
            # The finalizer goes while the operator still runs.
            kube.run("delete", "itemservice", "--all", "--timeout=60s", check=False)
    finally:
        handlers.read_from_api()
    assert runner.exception is None, runner.output


def _status(kube: Kubectl) -> dict[str, Any]:
    found: dict[str, Any] = kube.get("itemservice", "shop").get("status") or {}
    return found


def _by_label(counter: Any, *labels: str) -> dict[str, float]:
    return {
        " ".join(s.labels[label] for label in labels): s.value
        for m in counter.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }


def _more(metrics: Any, passes: float) -> bool:
    return counter_total(metrics.RECONCILES) > passes


def test_a_steady_item_service_costs_no_request_and_watches_wake_it(
    kube: Kubectl, database_url: str, operator: None
) -> None:
    from items_operator import metrics

    kube.apply(secret("shop-db", database_url))
    kube.apply(item_service("shop", IMAGE, "shop-db", replicas=0))
    wait_until(
        "shop to be scaled to zero on its first release",
        lambda: _status(kube).get("phase") == "ScaledToZero",
        240,
        lambda: str(_status(kube)) + kube.run("get", "jobs,pods,events", check=False).stdout,
    )
    wait_settled(metrics)
    # Lag-safe: on its way to steady, every object was written once, though the caches (and
    # the live body) learn of each write only from its watch event.
    written = _by_label(metrics.WRITES, "action", "kind")
    assert all(n == 1 for what, n in written.items() if what != "patch-status ItemService"), written

    # Passes woken by events of the ItemService (an annotation each): no request, no write.
    reads, writes = counter_total(metrics.READS), counter_total(metrics.WRITES)
    for n in range(3):
        passes = counter_total(metrics.RECONCILES)
        kube.run("annotate", "--overwrite", "itemservice", "shop", f"test.invalid/poke={n}")
        wait_until("a pass woken by the event", functools.partial(_more, metrics, passes), 20)
    assert counter_total(metrics.READS) == reads
    assert counter_total(metrics.WRITES) == writes
    cached = {s.labels["kind"]: s.value for m in metrics.CACHE_OBJECTS.collect() for s in m.samples}
    assert cached["Deployment"] >= 1
    assert cached["ControllerRevision"] >= 1
    assert cached["Secret"] >= 1
    # KopfRunner (click) holds sys.stdout while it runs: straight to the descriptor.
    reads_by_kind = _by_label(metrics.READS, "verb", "kind")
    os.write(1, f"\ncached: {cached}; API reads: {reads_by_kind}; writes: {written}\n".encode())

    # A deleted Service comes back through its watch event (the resync is 10 minutes away).
    kube.run("delete", "service", "shop")
    wait_until(
        "the Service to be re-created",
        lambda: kube.run("get", "service", "shop", check=False).returncode == 0,
        20,
    )

    # A new database URL is a new release: the Secret's watch event starts its migration.
    jobs = set(kube.run("get", "jobs", "-o", "name").stdout.split())
    kube.apply(secret("shop-db", database_url + "?charset=utf8mb4"))
    wait_until(
        "a migration Job for the new database target",
        lambda: set(kube.run("get", "jobs", "-o", "name").stdout.split()) - jobs,
        20,
    )
