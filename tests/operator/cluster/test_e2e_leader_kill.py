"""Two operator replicas, the leader SIGKILLed in each phase of a release (issue #13): while its
migration runs, while it rolls out, and right after it rolled back. The standby takes over once
the Lease runs out, the ItemService converges, every release keeps exactly one migration Job,
and the kubelet restarts the killed container, which comes back and follows.

Three ItemServices start on v1 together (one setup instead of three); the phases run one after
the other, each with its own kill. The takeover times are printed (`-s`), bounded loosely.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from items_operator.constants import LABEL_INSTANCE, LABEL_MIGRATION_KEY, LABEL_RELEASE

from tests.cluster.kube_support import Kubectl, wait_until
from tests.operator.cluster.e2e import (
    E2E,
    RELEASE_NAMESPACE,
    V1,
    Cluster,
    item_service,
    runs,
    secret,
)
from tests.operator.cluster.migration_pods import Sampler, sleeping_pod
from tests.operator.cluster.operators import (
    LEASE_DURATION,
    RETRY_PERIOD,
    counters,
    holder,
    operator_kube,
    pod_of,
    ready_operator_pods,
    restarts,
)
from tests.operator.cluster.pod_signals import kill

pytestmark = pytest.mark.cluster

MIGRATING, ROLLING, ROLLBACK = "kill-migrating", "kill-rolling", "kill-rollback"
# The slow migration outlasts the takeover (a lease duration and a retry or two) by ~8 s, so the
# standby finds its Job still running and must carry it on, not make another.
SLEEP = {"name": "E2E_MIGRATION_SLEEP_SECONDS", "value": str(LEASE_DURATION + 10)}
TAKEOVER_BOUND = LEASE_DURATION + 2 * RETRY_PERIOD + 10  # the margin: polling, a loaded node


def _operator_state() -> str:
    return operator_kube().run("get", "pods,lease,events", "-o", "wide", check=False).stdout


@dataclass
class Kill:
    """One SIGKILL of the Lease holder, aimed before the moment comes (the reads it needs take
    seconds), and what the polls after it saw (seconds after it)."""

    cluster: Cluster
    name: str
    identity: str
    pod: str
    standby: str
    restarts: int
    standby_passes: float
    at: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)
    new_holder: str = ""
    holder_after: float | None = None
    status_after: float | None = None

    def fire(self) -> None:
        assert holder() == self.identity, "the Lease changed hands before the kill"
        kill(operator_kube(), self.pod)
        self.at = time.monotonic()
        # Read after the kill: a write the leader had in flight is part of what it left.
        self.status = self.cluster.status(self.name)

    def poll(self) -> None:
        """Note the first new holder and the first change of the status since the kill."""
        now = time.monotonic() - self.at
        if not self.new_holder and (identity := holder()) not in ("", self.identity):
            self.new_holder, self.holder_after = identity, now
        if self.status_after is None and self.cluster.status(self.name) != self.status:
            self.status_after = now

    def taken_over(self) -> None:
        def seen() -> str:
            self.poll()
            return self.new_holder

        wait_until("a new Lease holder", seen, TAKEOVER_BOUND + 10, _operator_state)
        assert pod_of(self.new_holder) == self.standby, (self.new_holder, self.standby)
        assert self.holder_after is not None
        assert self.holder_after <= TAKEOVER_BOUND, self.holder_after

    def new_leader_passed(self, at_least: int) -> None:
        """The new leader ran `at_least` passes (one per ItemService when it took over)."""
        wait_until(
            "the new leader's passes",
            lambda: counters(self.standby)["reconciles_total"] >= self.standby_passes + at_least,
            30,
            _operator_state,
        )

    def comes_back(self, e2e: E2E) -> None:
        """The kubelet restarted the killed container; it runs, and follows (or leads)."""

        def back() -> bool:
            return restarts(self.pod) > self.restarts and len(ready_operator_pods(e2e)) == 2

        wait_until(f"{self.pod} to be restarted", back, 90, _operator_state)
        leads = pod_of(holder()) == self.pod
        seen = wait_until(f"{self.pod}'s metrics", lambda: counters(self.pod), 30)
        assert seen["leader"] == (1 if leads else 0), seen

    def report(self, phase: str) -> None:
        change = "none" if self.status_after is None else f"{self.status_after:.1f}s"
        print(
            f"\n{phase}: killed {self.pod} (phase {self.status.get('phase')}); "
            f"{self.standby} held the Lease {self.holder_after:.1f}s later; "
            f"next status change: {change}"
        )


def aim(e2e: E2E, cluster: Cluster, name: str) -> Kill:
    """The holder to kill, once both replicas run (so one stands by)."""

    def two_and_a_holder() -> str | None:
        pods, identity = ready_operator_pods(e2e), holder()
        return identity if len(pods) == 2 and pod_of(identity) in pods else None

    identity = wait_until("a holder and a standby", two_and_a_holder, 90, _operator_state)
    leader = pod_of(identity)
    [standby] = [p for p in ready_operator_pods(e2e) if p != leader]
    passes = counters(standby)["reconciles_total"]
    return Kill(cluster, name, identity, leader, standby, restarts(leader), passes)


def migration_key(cluster: Cluster, name: str, release: str) -> str:
    """The migration key of a stored release (its ControllerRevision's label)."""
    selector = f"{LABEL_INSTANCE}={name},{LABEL_RELEASE}={release}"
    [revision] = cluster.items("controllerrevisions", selector)
    return str(revision["metadata"]["labels"][LABEL_MIGRATION_KEY])


def release_jobs(cluster: Cluster, name: str, key: str) -> list[dict[str, Any]]:
    return [
        j
        for j in cluster.jobs(name)
        if (j["metadata"].get("labels") or {}).get(LABEL_MIGRATION_KEY) == key
    ]


def one_job_each(sampler: Sampler, cluster: Cluster, name: str, release: str) -> dict[str, Any]:
    """The release's one migration Job (one uid all along); no key ever had two."""
    key = migration_key(cluster, name, release)
    [job] = release_jobs(cluster, name, key)
    assert sampler.jobs[key] == {job["metadata"]["uid"]}, sampler.jobs
    assert all(len(uids) == 1 for uids in sampler.jobs.values()), sampler.jobs
    assert job["status"].get("succeeded") == 1, job["status"]
    return job


@pytest.fixture(scope="module")
def kills(e2e: E2E, two_operators: None) -> Iterator[Cluster]:
    kube = Kubectl(RELEASE_NAMESPACE)
    cluster = Cluster(kube)
    names = (MIGRATING, ROLLING, ROLLBACK)
    for name in names:
        url = e2e.database.create(f"e2e_{name.replace('-', '_')}")
        kube.apply(secret(f"{name}-db", url))
        body = item_service(name, V1, f"{name}-db")
        if name == MIGRATING:
            body["spec"]["env"] = [*body["spec"]["env"], SLEEP]
        if name == ROLLING:
            body["spec"]["replicas"] = 2  # two pods, one after the other: a longer rollout
        kube.apply(body)
    for name in names:
        cluster.wait_phase(name, "Available", 240, image=V1)
    yield cluster
    kube.run("delete", "itemservice", *names, "--ignore-not-found", "--timeout=60s", check=False)


def test_a_leader_killed_mid_migration(kills: Cluster, e2e: E2E) -> None:
    image = e2e.images.slow_migration
    killed = aim(e2e, kills, MIGRATING)
    with Sampler(kills, MIGRATING) as sampler:
        kills.set_image(MIGRATING, image)
        migrator = sleeping_pod(kills, MIGRATING, besides=set())
        killed.fire()
        killed.taken_over()
        still = kills.kube.get("pod", migrator)["status"].get("phase")
        assert still == "Running", f"the migration ended before the takeover ({still})"
        status = kills.wait_phase(MIGRATING, "Available", 120, image=image, also=killed.poll)
    killed.report("migrating")
    assert sampler.samples > 20
    assert sampler.most == 1, "two migration pods ran at once"
    job = one_job_each(sampler, kills, MIGRATING, status["targetRelease"])
    assert job["status"].get("failed", 0) == 0
    assert runs(kills.deployment_image(MIGRATING), image)
    assert status["history"][-1]["outcome"] == "Available"
    killed.comes_back(e2e)


def test_a_leader_killed_mid_rollout(kills: Cluster, e2e: E2E) -> None:
    image = e2e.images.v2

    def rolling_out() -> bool:
        status = kills.status(ROLLING)
        return (
            status.get("phase") == "RollingOut"
            and status.get("targetImage") == image
            and runs(kills.deployment_image(ROLLING), image)
        )

    killed = aim(e2e, kills, ROLLING)
    with Sampler(kills, ROLLING) as sampler:
        kills.set_image(ROLLING, image)
        wait_until("v2 to roll out", rolling_out, 120, lambda: kills.describe(ROLLING))
        killed.fire()
        assert killed.status["phase"] == "RollingOut", killed.status
        killed.taken_over()
        status = kills.wait_phase(ROLLING, "Available", 120, image=image, also=killed.poll)
    killed.report("rolling out")
    one_job_each(sampler, kills, ROLLING, status["targetRelease"])
    assert runs(kills.deployment_image(ROLLING), image)
    assert "RolledBack" not in [h.get("outcome") for h in status["history"]], status["history"]
    assert not status.get("failedImage")
    killed.comes_back(e2e)


def test_a_leader_killed_right_after_rolling_back(kills: Cluster, e2e: E2E) -> None:
    bad = e2e.images.never_ready
    v1 = kills.status(ROLLBACK)["currentRelease"]
    v1_key = migration_key(kills, ROLLBACK, v1)
    [v1_job] = release_jobs(kills, ROLLBACK, v1_key)
    killed = aim(e2e, kills, ROLLBACK)
    with Sampler(kills, ROLLBACK) as sampler:
        kills.set_image(ROLLBACK, bad)
        wait_until(
            "the broken release to roll out",
            lambda: runs(kills.deployment_image(ROLLBACK), bad),
            120,
            lambda: kills.describe(ROLLBACK),
        )
        # The template back on v1 is the rollback's first write; the status may not say it yet.
        wait_until(
            "the rollback",
            lambda: runs(kills.deployment_image(ROLLBACK), V1),
            120,
            lambda: kills.describe(ROLLBACK),
        )
        killed.fire()
        killed.taken_over()
        status = kills.wait_phase(ROLLBACK, "RolledBack", 60, image=bad, also=killed.poll)
        killed.new_leader_passed(at_least=3)  # one pass per ItemService of this module
        template = kills.kube.get("deployment", ROLLBACK)["spec"]["template"]

        def still_rolled_back() -> None:
            assert kills.status(ROLLBACK)["phase"] == "RolledBack"
            assert kills.kube.get("deployment", ROLLBACK)["spec"]["template"] == template

        kills.hold(3 * RETRY_PERIOD, still_rolled_back)
    killed.report("rolling back")
    assert runs(kills.deployment_image(ROLLBACK), V1)
    assert status["failedImage"] == bad
    history = kills.status(ROLLBACK)["history"]
    assert [h.get("outcome") for h in history].count("RolledBack") == 1, history
    # The rolled-back-to release keeps its one Job: nothing migrated it again.
    after = [j["metadata"]["uid"] for j in release_jobs(kills, ROLLBACK, v1_key)]
    assert after == [v1_job["metadata"]["uid"]], after
    assert sampler.jobs[v1_key] == {v1_job["metadata"]["uid"]}, sampler.jobs
    one_job_each(sampler, kills, ROLLBACK, status["failedRelease"])
    killed.comes_back(e2e)
