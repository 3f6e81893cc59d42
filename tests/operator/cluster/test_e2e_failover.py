"""Two operator replicas and the Lease (issue #13): the leader frozen (SIGSTOP) mid-rollout of a
never-ready image; the standby takes over and rolls back within lease duration + window; the
old leader, thawed, writes nothing (its own counters) and the rolled-back state stays.

One ItemService, `failover`; the operator Deployment is scaled to two replicas for this module
and back to one after it (the other e2e modules expect one operator pod).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.cluster.kube_support import Kubectl, wait_until
from tests.operator.cluster.e2e import (
    E2E,
    READINESS_TIMEOUT,
    RELEASE_NAMESPACE,
    V1,
    Cluster,
    item_service,
    runs,
    secret,
)
from tests.operator.cluster.operators import (
    LEASE_DURATION,
    RETRY_PERIOD,
    counters,
    holder_pod,
    operator_kube,
    ready_operator_pods,
)
from tests.operator.cluster.pod_signals import frozen

pytestmark = pytest.mark.cluster

NAME = "failover"


@pytest.fixture(scope="module")
def failover(e2e: E2E, two_operators: None) -> Iterator[Cluster]:
    kube = Kubectl(RELEASE_NAMESPACE)
    cluster = Cluster(kube)
    kube.apply(secret("failover-db", e2e.database.create("e2e_failover")))
    kube.apply(item_service(NAME, V1, "failover-db"))
    cluster.wait_phase(NAME, "Available", 240, image=V1)
    yield cluster
    kube.run("delete", "itemservice", NAME, "--ignore-not-found", "--timeout=60s", check=False)


def test_one_replica_leads_and_the_other_stands_by(failover: Cluster, e2e: E2E) -> None:
    leader = holder_pod()
    pods = ready_operator_pods(e2e)
    assert leader in pods
    [standby] = [p for p in pods if p != leader]
    assert counters(leader)["leader"] == 1
    assert counters(standby)["leader"] == 0


def test_a_frozen_leader_is_replaced_and_writes_nothing_after_thawing(
    failover: Cluster, e2e: E2E
) -> None:
    bad = e2e.images.never_ready
    leader = holder_pod()
    failover.set_image(NAME, bad)

    def rolling_out() -> bool:  # the broken release serves: the verdict's window runs
        return failover.status(NAME).get("phase") == "RollingOut" and runs(
            failover.deployment_image(NAME), bad
        )

    wait_until("the broken release to roll out", rolling_out, 180, lambda: failover.describe(NAME))
    before = counters(leader)  # read just before the freeze: it may not move after
    with frozen(operator_kube(), leader):
        frozen_at = time.monotonic()
        status = failover.wait_phase(NAME, "RolledBack", 120, image=bad)
        took = time.monotonic() - frozen_at
        assert holder_pod() != leader
        bound = LEASE_DURATION + 2 * RETRY_PERIOD + READINESS_TIMEOUT + 10
        print(f"\nrolled back by the standby {took:.1f}s after the leader froze")
        assert took <= bound, (took, bound)
        assert runs(failover.deployment_image(NAME), V1)
        template = failover.kube.get("deployment", NAME)["spec"]["template"]
    # Thawed: its permission ran out while it was stopped; it follows now.

    def still_rolled_back() -> None:
        assert failover.kube.get("deployment", NAME)["spec"]["template"] == template

    failover.hold(3 * RETRY_PERIOD, still_rolled_back)
    after = counters(leader)
    assert after["writes_total"] == before["writes_total"], (before, after)
    assert after["leader"] == 0
    assert failover.status(NAME)["phase"] == "RolledBack"
    assert status["failedImage"] == bad
    history = failover.status(NAME)["history"]
    assert [h["outcome"] for h in history].count("RolledBack") == 1, json.dumps(history)
