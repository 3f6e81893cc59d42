"""Fenced leadership: a coordination.k8s.io/v1 Lease in the operator's namespace decides which
replica may write; election.py is the pure state machine, this module its I/O (lightkube).

The fence is what the reconcile passes ask before every write batch and every write
(`fence.check()`): a replica that cannot prove, by its own monotonic clock, that its last
successful renewal is younger than the renew deadline writes nothing, and its daemons idle
(no reads either) until it leads again. CLOCK_MONOTONIC keeps counting while a process is
stopped (SIGSTOP, a frozen VM's guest aside), so a leader that wakes from a freeze finds its
permission expired before it can act on the plan it computed earlier.

Kopf peering is switched off when the Lease is on (Kopf runs `standalone` on every replica):
two independent elections could disagree (peering pausing the Lease holder while the peering
winner holds no Lease: nobody works until the peering lifetime ends), and peering adds no
safety the Lease lacks. What Kopf still does on every replica is harmless: it adds and removes
its finalizer with JSON patches guarded by a resourceVersion test (two replicas adding it: one
wins, the other sees it present), the operator does no work on deletion (owned objects go by
garbage collection, the migration Job is meant to outlive it), and the standby's daemons read
and write nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2 as httpx
from lightkube import ApiError, AsyncClient, codecs
from lightkube.resources.coordination_v1 import Lease

from items_operator import metrics
from items_operator.election import Election, LeaseRecord, Step, Timings

logger = logging.getLogger(__name__)


class NotLeaderError(Exception):
    """This replica cannot prove it holds the Lease: the write was not made."""


class Fence(Protocol):
    def may_write(self) -> bool: ...

    def check(self) -> None: ...

    async def wait_for_leadership(self, within: float) -> bool: ...


class Unfenced:
    """No Lease: one replica (--standalone) or Kopf peering alone (--no-leader-election)."""

    def may_write(self) -> bool:
        return True

    def check(self) -> None:
        return None

    async def wait_for_leadership(self, within: float) -> bool:
        return True


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    timings: Timings


def holder_identity(pod_name: str | None) -> str:
    """The pod's name plus a random suffix: a restarted container (same pod name) is a new
    holder, so it never mistakes its predecessor's record for its own."""
    return f"{pod_name or socket.gethostname()}-{secrets.token_hex(4)}"


def lease_record(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") or {}
    renew = spec.get("renewTime")
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        resource_version=body["metadata"]["resourceVersion"],
        renew_time=None if renew is None else str(renew),
        duration_seconds=spec.get("leaseDurationSeconds"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def _micro_time() -> str:
    # For people reading the Lease only; no replica compares it with its own clock.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Runs the election against the API server and is the fence the daemons consult."""

    def __init__(self, config: LeaseConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.election = Election(config.identity, config.timings)
        self.renewing = asyncio.Event()  # cleared: the loop stands still (tests pause it)
        self.renewing.set()
        self._acquired = asyncio.Event()
        self._body: dict[str, Any] | None = None  # the Lease as last read or written
        self._leading = False
        self.task: asyncio.Task[None] | None = None  # run(), once started
        self.client: AsyncClient | None = None

    def may_write(self) -> bool:
        return self.election.may_write(self.clock())

    def check(self) -> None:
        if not self.may_write():
            raise NotLeaderError(f"{self.config.identity} does not hold Lease {self.config.name}")

    async def wait_for_leadership(self, within: float) -> bool:
        """True at once while leading; otherwise wait up to `within` seconds for an acquisition."""
        if self.may_write():
            return True
        self._acquired.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acquired.wait(), within)
        return self.may_write()

    async def run(self, client: AsyncClient) -> None:
        while True:
            await self.renewing.wait()
            try:
                pause = await self.step(client)
            except Exception:  # a bug here must not end the election: the fence runs out
                logger.exception("leader election step failed")
                self.election.failed()
                pause = self.config.timings.retry_period
            await asyncio.sleep(pause)

    async def step(self, client: AsyncClient) -> float:
        """One step of the election; returns the seconds until the next."""
        step = self.election.next_step(self.clock())
        started = self.clock()
        result = "ok"
        try:
            if step is Step.READ:
                body = await self._read(client)
                self.election.observed(None if body is None else lease_record(body), self.clock())
            else:
                body = await self._write(client, step)
                self.election.succeeded(lease_record(body), started)
            self._body = body
        except ApiError as error:
            if error.status.code == 409:
                result = "conflict"
                self.election.conflicted()
            elif error.status.code == 404 and step is not Step.CREATE:
                result = "gone"
                self.election.observed(None, self.clock())
            else:
                result = "error"
                self.election.failed()
                logger.warning(f"Lease {step.value} failed: {error}")
        except httpx.HTTPError as error:
            result = "error"
            self.election.failed()
            logger.warning(f"Lease {step.value} failed: {error!r}")
        metrics.LEASE_REQUESTS.labels(step.value, result).inc()
        self._announce()
        return self.election.pause_after(result)

    async def _read(self, client: AsyncClient) -> dict[str, Any] | None:
        try:
            lease = await client.get(Lease, self.config.name, namespace=self.config.namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return dict(lease.to_dict())

    async def _write(self, client: AsyncClient, step: Step) -> dict[str, Any]:
        now = _micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": math.ceil(self.config.timings.lease_duration),
            "renewTime": now,
        }
        if step is Step.CREATE:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": {**spec, "acquireTime": now, "leaseTransitions": 0},
            }
            created: Any = await client.create(codecs.from_dict(body))
            return dict(created.to_dict())
        assert self._body is not None  # ACQUIRE and RENEW follow a read or a write
        old_spec = self._body.get("spec") or {}
        if step is Step.ACQUIRE:
            transitions = int(old_spec.get("leaseTransitions") or 0) + 1
            spec |= {"acquireTime": now, "leaseTransitions": transitions}
        # metadata.resourceVersion as last seen: the precondition that makes a race safe.
        body = {**self._body, "spec": {**old_spec, **spec}}
        replaced: Any = await client.replace(codecs.from_dict(body))
        return dict(replaced.to_dict())

    async def release(self, client: AsyncClient) -> None:
        """Hand the Lease over at once on shutdown, called once no pass runs any more (Kopf's
        cleanup comes after its daemons stopped): the fence closes first, then the holder is
        emptied with the resourceVersion we hold (a 409: someone took it already)."""
        leading, body = self.may_write(), self._body
        self.election.resign()
        if not leading or body is None:
            return
        spec = {**(body.get("spec") or {}), "holderIdentity": "", "renewTime": _micro_time()}
        with contextlib.suppress(ApiError, httpx.HTTPError):
            await client.replace(codecs.from_dict({**body, "spec": spec}))
            logger.info(f"{self.config.identity} released Lease {self.config.name}")

    def _announce(self) -> None:
        leading = self.may_write()
        if leading:
            self._acquired.set()
        if leading != self._leading:
            self._leading = leading
            if leading:
                logger.info(f"{self.config.identity} leads (Lease {self.config.name})")
            else:
                logger.warning(f"{self.config.identity} no longer leads (Lease {self.config.name})")


def start(lease: LeaseConfig | None) -> Fence:
    """The fence for this process: unfenced without a Lease, else an elector whose loop runs
    from now on (Kopf's startup) and whose state the items_operator_leader gauge shows. The
    elector has its own client: a renewal never queues behind 1,000 passes' requests."""
    fence: Fence
    if lease is None:
        fence = Unfenced()
    else:
        elector = LeaseElector(lease)
        elector.client = AsyncClient()
        elector.task = asyncio.create_task(elector.run(elector.client), name="leader-election")
        fence = elector
    metrics.LEADER.set_function(lambda: float(fence.may_write()))
    return fence


async def stop(fence: Fence) -> None:
    """At Kopf's cleanup, after its daemons stopped: end the loop, then release the Lease."""
    if not isinstance(fence, LeaseElector) or fence.task is None or fence.client is None:
        return
    fence.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fence.task
    await fence.release(fence.client)
    await fence.client.close()
