"""Phantom records, a safety net: the informers' relist diffs its listing against the store
(informers.py), so a deletion missed while a watch was down is a deletion there too; this
audit remains for a record that outlives its object any other way (under Kopf's indexes, which
forgot an object only on its DELETED event, that was every relist's deletions).

The informers stamp each object's last event (`seen`); an audit lists each cached kind
once per served namespace (label-selected, as the watches) and marks as phantoms the records
it did not list and that no event has touched since the audit began; the reads skip them
(cache.ObjectCache). A namespace is audited on its first pass after its daemons (re)start and
every `interval` seconds after that: a per-namespace cost, never per ItemService.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient, operators
from lightkube.resources.apps_v1 import ControllerRevision, Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret, Service, ServiceAccount
from lightkube.resources.policy_v1 import PodDisruptionBudget

from items_operator import metrics
from items_operator.constants import APP_NAME, LABEL_NAME

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
_RESOURCES: dict[str, Any] = {
    "Deployment": Deployment,
    "ServiceAccount": ServiceAccount,
    "Service": Service,
    "PodDisruptionBudget": PodDisruptionBudget,
    "ControllerRevision": ControllerRevision,
    "Job": Job,
    "Pod": Pod,
    "Secret": Secret,
}


@dataclass
class Phantoms:
    interval: float = 600.0
    seen: dict[ObjectKey, float] = field(default_factory=dict)
    phantoms: set[ObjectKey] = field(default_factory=set)
    audited: dict[str, float] = field(default_factory=dict)  # namespace -> audit start
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def touched(self, key: ObjectKey) -> None:
        """An event or a listing of this object (the informers): it exists, as of now."""
        self.seen[key] = time.monotonic()
        self.phantoms.discard(key)

    def restarted(self, namespace: str) -> None:
        """The namespace's daemons all stopped (peering paused them): audit on the next pass."""
        self.audited.pop(namespace, None)

    def due(self, namespace: str, now: float) -> bool:
        started = self.audited.get(namespace)
        return started is None or now - started > self.interval

    async def audit_if_due(
        self, client: AsyncClient, namespace: str, indexed: Callable[[str], set[str]]
    ) -> None:
        if not self.due(namespace, time.monotonic()):
            return
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            if self.due(namespace, time.monotonic()):
                await self.audit(namespace, functools.partial(_names, client, namespace), indexed)

    async def audit(
        self,
        namespace: str,
        listing: Callable[[str], Any],
        indexed: Callable[[str], set[str]],
    ) -> None:
        """`listing(kind)`: the names the API server lists; `indexed(kind)`: the names the
        indexes hold (Kopf drops an object on its DELETED event: no phantom, just forgotten)."""
        started = time.monotonic()
        for kind in _RESOURCES:
            present, held = await listing(kind), indexed(kind)
            for key in [k for k in self.phantoms if k[:2] == (kind, namespace)]:
                if key[2] not in held:
                    self.phantoms.discard(key)  # gone from the index too
            for key, seen in list(self.seen.items()):
                if key[:2] != (kind, namespace) or key[2] in present:
                    continue
                if key[2] not in held:
                    del self.seen[key]  # deleted, and its event seen: nothing to hide
                elif seen < started:
                    self.phantoms.add(key)
                    del self.seen[key]
        self.audited[namespace] = started

    def hides(self, key: ObjectKey) -> bool:
        return key in self.phantoms


async def _names(client: AsyncClient, namespace: str, kind: str) -> set[str]:
    metrics.READS.labels("audit", kind).inc()
    resource = _RESOURCES[kind]
    if kind == "Secret":
        fields: dict[str, Any] = {"type": operators.not_equal("helm.sh/release.v1")}
        listed = client.list(resource, namespace=namespace, fields=fields)
    else:
        listed = client.list(resource, namespace=namespace, labels={LABEL_NAME: APP_NAME})
    return {str(obj.metadata.name) async for obj in listed}


PHANTOMS = Phantoms()
