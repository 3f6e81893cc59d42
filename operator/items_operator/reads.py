"""Where one pass's reads come from: the API server (ApiReads) or the watch-fed indexes
(CachedReads, cache.py). Both return the same reduced records (records.py), so kube.observe
assembles the same Observed from either.

Only API reads are counted in items_operator_reads_total; a cache hit costs no request. The
cache answers what exists; absence is confirmed by the API (a fresh GET by name), because the
next thing a pass does about an absent object is create it, and the watches select our labels
only: someone else's object under our name is invisible to them and must be seen as a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import ControllerRevision, Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret, Service, ServiceAccount
from lightkube.resources.policy_v1 import PodDisruptionBudget

from items_operator import metrics
from items_operator.constants import COMPONENT_MIGRATION, COMPONENT_SERVER
from items_operator.model import Owner
from items_operator.records import (
    JobRecord,
    NamedRecord,
    PodRecord,
    RevisionRecord,
    SecretRecord,
    reduce_job,
    reduce_named,
    reduce_pod,
    reduce_revision,
    reduce_secret,
)
from items_operator.specs.common import selector_labels

NAMED_RESOURCES: dict[str, Any] = {
    "ServiceAccount": ServiceAccount,
    "Service": Service,
    "PodDisruptionBudget": PodDisruptionBudget,
    "Deployment": Deployment,
}


def is_not_found(error: ApiError) -> bool:
    return error.status.code == 404


async def get(client: AsyncClient, kind: Any, name: str, namespace: str) -> dict[str, Any] | None:
    metrics.READS.labels("get", kind.__name__).inc()
    try:
        obj = await client.get(kind, name, namespace=namespace)
    except ApiError as error:
        if is_not_found(error):
            return None
        raise
    return dict(obj.to_dict())


async def list_objects(
    client: AsyncClient, kind: Any, namespace: str, labels: dict[str, Any]
) -> list[dict[str, Any]]:
    metrics.READS.labels("list", kind.__name__).inc()
    return [
        dict(obj.to_dict()) async for obj in client.list(kind, namespace=namespace, labels=labels)
    ]


class Reads(Protocol):
    async def secret(self, namespace: str, name: str) -> SecretRecord | None: ...
    async def named(
        self, kind: str, namespace: str, name: str, *, wanted: bool = True
    ) -> NamedRecord | None: ...
    async def revisions(self, owner: Owner) -> list[RevisionRecord]: ...
    async def jobs(self, owner: Owner) -> list[JobRecord]: ...
    async def pods(self, owner: Owner, component: str) -> list[PodRecord]: ...


class ApiReads:
    """Every answer a request: one GET or LIST each."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def secret(self, namespace: str, name: str) -> SecretRecord | None:
        obj = await get(self.client, Secret, name, namespace)
        return reduce_secret(obj) if obj is not None else None

    async def named(
        self, kind: str, namespace: str, name: str, *, wanted: bool = True
    ) -> NamedRecord | None:
        obj = await get(self.client, NAMED_RESOURCES[kind], name, namespace)
        return reduce_named(kind, obj) if obj is not None else None

    async def revisions(self, owner: Owner) -> list[RevisionRecord]:
        labels = selector_labels(owner, COMPONENT_SERVER)
        objs = await list_objects(self.client, ControllerRevision, owner.namespace, dict(labels))
        return [reduce_revision(obj) for obj in objs]

    async def jobs(self, owner: Owner) -> list[JobRecord]:
        labels = selector_labels(owner, COMPONENT_MIGRATION)
        objs = await list_objects(self.client, Job, owner.namespace, dict(labels))
        return [reduce_job(obj) for obj in objs]

    async def pods(self, owner: Owner, component: str) -> list[PodRecord]:
        labels = selector_labels(owner, component)
        objs = await list_objects(self.client, Pod, owner.namespace, dict(labels))
        return [reduce_pod(obj) for obj in objs]


class IndexView(Protocol):
    """What CachedReads needs of the indexes (cache.ObjectCache; a dict of lists in tests)."""

    def one(self, index: str, key: tuple[str, ...]) -> Any | None: ...
    def all(self, index: str, key: tuple[str, ...]) -> list[Any]: ...
    async def audit(self, client: AsyncClient, namespace: str) -> None: ...


class CachedReads:
    """Answers from the watch-fed indexes; a request only to confirm an absence."""

    def __init__(self, view: IndexView, client: AsyncClient) -> None:
        self.view, self.api = view, ApiReads(client)

    async def secret(self, namespace: str, name: str) -> SecretRecord | None:
        record: SecretRecord | None = self.view.one("Secret", (namespace, name))
        # Absent: missing, or of a type the watch leaves out (cache.SECRET_FIELD_SELECTOR).
        return record if record is not None else await self.api.secret(namespace, name)

    async def named(
        self, kind: str, namespace: str, name: str, *, wanted: bool = True
    ) -> NamedRecord | None:
        """`wanted`: the builders would create it (a PDB is not, for one replica); only then
        does its absence matter enough to confirm."""
        record: NamedRecord | None = self.view.one(kind, (namespace, name))
        if record is not None or not wanted:
            return record
        return await self.api.named(kind, namespace, name)

    async def revisions(self, owner: Owner) -> list[RevisionRecord]:
        return self.view.all("ControllerRevision", _key(owner, COMPONENT_SERVER))

    async def jobs(self, owner: Owner) -> list[JobRecord]:
        return self.view.all("Job", _key(owner, COMPONENT_MIGRATION))

    async def pods(self, owner: Owner, component: str) -> list[PodRecord]:
        return self.view.all("Pod", _key(owner, component))


def _key(owner: Owner, component: str) -> tuple[str, str, str]:
    return (owner.namespace, owner.name, component)


class DictView:
    """An IndexView over plain dicts (tests, benchmarks): {index: {key: [records]}}."""

    def __init__(self, indexes: Mapping[str, Mapping[tuple[str, ...], list[Any]]]) -> None:
        self.indexes = indexes

    def one(self, index: str, key: tuple[str, ...]) -> Any | None:
        found = self.all(index, key)
        return found[0] if found else None

    def all(self, index: str, key: tuple[str, ...]) -> list[Any]:
        return list(self.indexes.get(index, {}).get(key, []))

    async def audit(self, client: AsyncClient, namespace: str) -> None:
        """Nothing to audit: the dicts are what the test says exists."""
