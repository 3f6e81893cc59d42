"""Fenced leadership against the real API server, no operator: two electors in this process
share a Lease (lease 3 s, renew deadline 2 s) in namespace items-lease-test, each with a
"writer" that writes only through its fence, as reconcile_once does. And the two
preconditions the operator relies on: a status merge patch and a server-side apply carrying a
stale resourceVersion are refused with 409."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from items_operator import kube as kube_io
from items_operator.constants import FIELD_MANAGER
from items_operator.election import Timings
from items_operator.leadership import LeaseConfig, LeaseElector, NotLeaderError
from lightkube import ApiError, AsyncClient, codecs
from lightkube.resources.apps_v1 import Deployment

from tests.cluster.kube_support import Kubectl, fresh_namespace
from tests.operator.unit.world import V1

pytestmark = pytest.mark.cluster

NAMESPACE = "items-lease-test"
TIMINGS = Timings(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)
# Requests to the local API server answer within this (the bound's slack).
LATENCY = 0.5
WRITE_INTERVAL = 0.02


@pytest.fixture(scope="module")
def lease_namespace() -> Iterator[str]:
    with fresh_namespace(NAMESPACE):
        yield NAMESPACE


@dataclass
class Replica:
    """An elector and a writer that writes (here: records) only while its fence allows."""

    elector: LeaseElector
    writes: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.elector.config.identity

    async def write_forever(self) -> None:
        while True:
            try:
                self.elector.check()
                self.writes.append(time.monotonic())
            except NotLeaderError:
                pass
            await asyncio.sleep(WRITE_INTERVAL)


async def _until(what: str, check: Callable[[], bool], within: float) -> float:
    """Wait for check() with a deadline; returns the monotonic time it first held."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


async def _with_two_replicas(
    lease: str, body: Callable[[Replica, Replica, AsyncClient], Awaitable[None]]
) -> None:
    client = AsyncClient(field_manager=FIELD_MANAGER)
    replicas = [
        Replica(LeaseElector(LeaseConfig(lease, NAMESPACE, f"{who}-{lease}", TIMINGS)))
        for who in ("a", "b")
    ]
    tasks = [asyncio.create_task(r.elector.run(client)) for r in replicas]
    tasks += [asyncio.create_task(r.write_forever()) for r in replicas]
    try:
        await _until("a leader", lambda: any(r.elector.may_write() for r in replicas), 15)
        leader, follower = sorted(replicas, key=lambda r: not r.elector.may_write())
        await body(leader, follower, client)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def test_exactly_one_of_two_electors_leads(lease_namespace: str) -> None:
    async def body(leader: Replica, follower: Replica, _: AsyncClient) -> None:
        observed_until = time.monotonic() + 4 * TIMINGS.retry_period + TIMINGS.lease_duration
        while time.monotonic() < observed_until:  # several renewals and follower reads
            assert leader.elector.may_write()
            assert not follower.elector.may_write()
            await asyncio.sleep(0.01)
        assert follower.writes == []
        assert leader.elector.election.record is not None
        assert follower.elector.election.record is not None
        assert follower.elector.election.record.holder == leader.name

    asyncio.run(_with_two_replicas(f"one-{secrets.token_hex(3)}", body))


def test_a_paused_leader_stops_writing_before_the_other_takes_over(lease_namespace: str) -> None:
    async def body(leader: Replica, follower: Replica, client: AsyncClient) -> None:
        paused_at = time.monotonic()
        leader.elector.renewing.clear()
        lost = await _until("the paused leader to lose", lambda: not leader.elector.may_write(), 5)
        won = await _until("the follower to take over", follower.elector.may_write, 10)
        # Its last renewal started at most a retry period before the pause; the follower saw it
        # at most a retry period later, then waits the lease duration and one more read.
        bound = TIMINGS.lease_duration + 2 * TIMINGS.retry_period + LATENCY
        assert won - paused_at <= bound, (won - paused_at, bound)
        assert lost - paused_at <= TIMINGS.renew_deadline + WRITE_INTERVAL
        assert lost < won
        print(f"\nfence closed {lost - paused_at:.2f}s, take-over {won - paused_at:.2f}s after")
        # Fenced: every write of the old leader happened before the new one's first.
        await _until("the new leader's first write", lambda: bool(follower.writes), 1)
        assert max(leader.writes) < min(follower.writes)
        assert max(leader.writes) < paused_at + TIMINGS.renew_deadline

        writes_before_resume = len(leader.writes)
        leader.elector.renewing.set()

        def sees_the_new_holder() -> bool:
            record = leader.elector.election.record
            return record is not None and record.holder == follower.name

        await _until("the resumed one to see the new holder", sees_the_new_holder, 5)
        writes = len(follower.writes)
        await _until("more writes of the new leader", lambda: len(follower.writes) > writes, 5)
        assert len(leader.writes) == writes_before_resume  # not one write after resuming
        assert not leader.elector.may_write()
        assert follower.elector.may_write()

    asyncio.run(_with_two_replicas(f"pause-{secrets.token_hex(3)}", body))


def test_a_released_lease_is_taken_over_within_a_retry_period(lease_namespace: str) -> None:
    """What a SIGTERMed operator does once its daemons stopped (Kopf's cleanup)."""

    async def body(leader: Replica, follower: Replica, client: AsyncClient) -> None:
        leader.elector.renewing.clear()
        released_at = time.monotonic()
        await leader.elector.release(client)
        assert not leader.elector.may_write()
        won = await _until("the follower to take over", follower.elector.may_write, 5)
        assert won - released_at <= TIMINGS.retry_period + LATENCY
        print(f"\ntake-over {won - released_at:.2f}s after a release")

    asyncio.run(_with_two_replicas(f"release-{secrets.token_hex(3)}", body))


def _item_service(name: str) -> dict[str, object]:
    return {
        "apiVersion": "items.platform.dev/v1alpha1",
        "kind": "ItemService",
        "metadata": {"name": name},
        "spec": {"image": V1, "database": {"secretRef": {"name": "db"}}},
    }


def test_a_status_patch_from_a_stale_read_is_refused(kube: Kubectl) -> None:
    kube.apply(_item_service("fenced"))
    stale = kube.get("itemservice", "fenced")["metadata"]["resourceVersion"]
    kube.run("annotate", "itemservice", "fenced", "touched=yes")  # a newer write

    async def patch() -> None:
        async with AsyncClient() as client:
            with pytest.raises(ApiError) as refused:
                await kube_io.patch_status(client, "fenced", ns, {"message": "stale"}, stale)
            assert refused.value.status.code == 409
            fresh = kube.get("itemservice", "fenced")["metadata"]["resourceVersion"]
            await kube_io.patch_status(client, "fenced", ns, {"message": "fresh"}, fresh)

    ns = kube.namespace
    asyncio.run(patch())
    assert kube.get("itemservice", "fenced")["status"]["message"] == "fresh"


def _deployment(namespace: str, image: str, version: str | None) -> Any:
    labels = {"app": "fenced"}
    metadata: dict[str, object] = {"name": "fenced", "namespace": namespace}
    if version is not None:
        metadata["resourceVersion"] = version
    return codecs.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        }
    )


def test_a_server_side_apply_from_a_stale_read_is_refused(kube: Kubectl) -> None:
    """What protects a rollback from a stale leader: its apply carries what it read."""
    ns = kube.namespace

    async def apply() -> None:
        async with AsyncClient(field_manager=FIELD_MANAGER) as client:
            first: Deployment = await client.apply(_deployment(ns, "img:1", None), force=True)
            assert first.metadata is not None
            stale = first.metadata.resourceVersion  # what the frozen leader read
            # The new leader's rollback, re-decided on a 409 as the operator does (the
            # Deployment controller writes the status too, which moves the resourceVersion).
            deadline = time.monotonic() + 10
            while True:
                read = await client.get(Deployment, "fenced", namespace=ns)
                assert read.metadata is not None
                try:
                    version = read.metadata.resourceVersion
                    await client.apply(_deployment(ns, "img:2", version), force=True)
                    break
                except ApiError as error:
                    if error.status.code != 409 or time.monotonic() > deadline:
                        raise
            with pytest.raises(ApiError) as refused:  # the stale leader's plan, after thawing
                await client.apply(_deployment(ns, "img:3", stale), force=True)
            assert refused.value.status.code == 409

    asyncio.run(apply())
    deployment = kube.get("deployment", "fenced")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
