"""Watch-fed caches (--cache-reads on): per kind a pass reads, reduced records (records.py) kept
by the operator's own informers (informers.py), so a steady-state pass makes no API request.

The watches select server-side: owned kinds by our name label (app.kubernetes.io/name, which
every object the builders make and every pod of theirs carries, and which the API reads'
label selectors include too), Secrets by type (docs/operator.md, "Reads from caches", argues
why Secrets are watched at all and why by type). Each informer lists its kind once, in pages,
then streams; every pass waits until its namespace's informers have listed (and were not
refused since), so no pass reads a cold cache.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lightkube import AsyncClient

from items_operator import metrics
from items_operator.audit import PHANTOMS
from items_operator.constants import APP_NAME, LABEL_INSTANCE, LABEL_NAME
from items_operator.informers import Informers, OnChange, Source
from items_operator.kopf_settings import WatchTimeouts
from items_operator.records import (
    instance_key,
    reduce_job,
    reduce_named,
    reduce_pod,
    reduce_revision,
    reduce_secret,
)
from items_operator.store import Entry, Store

# (kind, group, version, plural, key): named kinds by (namespace, name); the rest by
# (namespace, instance, component), the same selection as the API's label selectors.
BY_NAME = "name"
BY_INSTANCE = "instance"
OWNED_RESOURCES: tuple[tuple[str, str, str, str, str], ...] = (
    ("Deployment", "apps", "v1", "deployments", BY_NAME),
    ("ServiceAccount", "", "v1", "serviceaccounts", BY_NAME),
    ("Service", "", "v1", "services", BY_NAME),
    ("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets", BY_NAME),
    ("ControllerRevision", "apps", "v1", "controllerrevisions", BY_INSTANCE),
    ("Job", "batch", "v1", "jobs", BY_INSTANCE),
    ("Pod", "", "v1", "pods", BY_INSTANCE),
)
OWNED_LABEL_SELECTOR = f"{LABEL_NAME}={APP_NAME}"
# Helm keeps each release as a Secret (up to 1 MiB each) and legacy service-account tokens
# are Secrets too: neither is ever a database URL, and they are most of a namespace's Secrets.
SECRET_FIELD_SELECTOR = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token"  # noqa: S105

_REDUCERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ControllerRevision": reduce_revision,
    "Job": reduce_job,
    "Pod": reduce_pod,
}


def entry_of(kind: str, by: str) -> Callable[[dict[str, Any]], Entry]:
    def entry(obj: dict[str, Any]) -> Entry:
        meta = obj["metadata"]
        # Interned: each decoded object has its own copy of strings a fleet shares.
        namespace, name = sys.intern(str(meta.get("namespace") or "")), str(meta["name"])
        instance = sys.intern(str((meta.get("labels") or {}).get(LABEL_INSTANCE, "")))
        key: tuple[str, ...] = (namespace, name)
        record: Any
        if kind == "Secret":
            record = reduce_secret(obj)
        elif by == BY_NAME:
            record = reduce_named(kind, obj)
        else:
            key, record = instance_key(obj), _REDUCERS[kind](obj)
        # The record's own string where it keeps one (pods' records do not).
        version = getattr(record, "version", None) or str(meta.get("resourceVersion") or "")
        return Entry((namespace, name), key, instance, version, record)

    return entry


_BY_KIND = {kind: by for kind, _, _, _, by in OWNED_RESOURCES}


def entry(kind: str, obj: dict[str, Any]) -> Entry:
    """The store entry of one object of a cached kind (tests, benchmarks)."""
    return entry_of(kind, _BY_KIND.get(kind, BY_NAME))(obj)


def sources() -> list[Source]:
    """What the informers list and watch: the owned kinds, then Secrets."""
    found = [
        Source(
            kind,
            f"/apis/{group}/{version}" if group else f"/api/{version}",
            plural,
            entry_of(kind, by),
            label_selector=OWNED_LABEL_SELECTOR,
        )
        for kind, group, version, plural, by in OWNED_RESOURCES
    ]
    secrets = entry_of("Secret", BY_NAME)
    return [*found, Source("Secret", "/api/v1", "secrets", secrets, None, SECRET_FIELD_SELECTOR)]


class ObjectCache:
    """reads.IndexView over the informers' stores, by (kind, namespace; None: all)."""

    def __init__(
        self, stores: Mapping[tuple[str, str | None], Store], informers: Informers | None = None
    ) -> None:
        self.stores, self.informers = stores, informers

    @classmethod
    def start(
        cls, namespaces: Sequence[str], timeouts: WatchTimeouts, on_change: OnChange
    ) -> ObjectCache:
        informers = Informers.start(sources(), namespaces, timeouts, on_change)
        stores = {where: i.store for where, i in informers.informers.items()}
        return cls(stores, informers)

    async def stop(self) -> None:
        if self.informers is not None:
            await self.informers.stop()

    async def wait_synced(self, namespace: str, seconds: float) -> bool:
        """Whether `namespace`'s view is listed and not refused since (informers.py)."""
        return self.informers is None or await self.informers.wait_synced(namespace, seconds)

    def store(self, kind: str, namespace: str) -> Store | None:
        return self.stores.get((kind, namespace)) or self.stores.get((kind, None))

    def one(self, index: str, key: tuple[str, ...]) -> Any | None:
        return next(iter(self.all(index, key)), None)

    def all(self, index: str, key: tuple[str, ...]) -> list[Any]:
        store = self.store(index, key[0])
        if store is None:
            return []
        return [e.record for e in store.get(key) if not PHANTOMS.hides((index, *e.object))]

    async def audit(self, client: AsyncClient, namespace: str) -> None:
        await PHANTOMS.audit_if_due(client, namespace, lambda kind: self.names(kind, namespace))

    def names(self, kind: str, namespace: str) -> set[str]:
        """The objects of `kind` in `namespace` the store holds, phantoms included."""
        store = self.store(kind, namespace)
        return store.names(namespace) if store is not None else set()

    def size(self, kind: str) -> int:
        return sum(len(store) for (k, _), store in self.stores.items() if k == kind)


def _kopf_raw(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The raw dict behind a kopf.Body (its `_src`, an internal of Kopf 1.45.x, pinned in
    pyproject.toml); None for any other mapping."""
    raw = getattr(body, "_src", None)
    return raw if isinstance(raw, dict) else None


# Of an ItemService, Kopf keeps the newest body for as long as its daemon runs (the pass reads
# it live); neither Kopf (its diff-base essence drops both) nor a pass reads these.
ITEM_SERVICE_SHED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def shed_item_service(body: Mapping[str, Any]) -> None:
    """Drop an ItemService body's managedFields and kubectl's copy of the manifest (each
    event's, in place: the body is the raw dict Kopf keeps); the rest is read."""
    raw = _kopf_raw(body)
    meta = raw.get("metadata") if raw is not None else None
    if not isinstance(meta, dict):
        return
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for key in ITEM_SERVICE_SHED_ANNOTATIONS:
            annotations.pop(key, None)


def export_sizes(cache: ObjectCache) -> None:
    """items_operator_cache_objects{kind} and _cache_unsynced, counted when scraped (the
    newest cache's)."""
    for kind in {kind for kind, _ in cache.stores}:
        metrics.CACHE_OBJECTS.labels(kind).set_function(functools.partial(cache.size, kind))
    if cache.informers is not None:
        metrics.CACHE_UNSYNCED.set_function(cache.informers.unsynced)
