"""Watch-fed caches (--cache-reads on): one Kopf index per kind a pass reads, holding reduced
records (records.py), so a steady-state pass makes no API request at all.

The watches select server-side: owned kinds by our name label (app.kubernetes.io/name, which
every object the builders make and every pod of theirs carries, and which the API reads'
label selectors include too), Secrets by type (docs/operator.md, "Reads from caches", argues
why Secrets are watched at all and why by type). Kopf lists each kind once, then streams; it
starts the daemons only once every index is filled, so no first pass reads a cold cache.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from lightkube import AsyncClient

from items_operator import metrics
from items_operator.audit import PHANTOMS
from items_operator.constants import APP_NAME, LABEL_NAME
from items_operator.kopf_settings import on_the_loop
from items_operator.records import (
    PodRecord,
    instance_key,
    reduce_job,
    reduce_named,
    reduce_pod,
    reduce_revision,
    reduce_secret,
)

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
INDEX_PREFIX = "items_cache_"

_REDUCERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ControllerRevision": reduce_revision,
    "Job": reduce_job,
    "Pod": reduce_pod,
}


def index_id(kind: str) -> str:
    return f"{INDEX_PREFIX}{kind}"


def apply_selectors(settings: kopf.OperatorSettings) -> None:
    """Server-side filters of the cache's watches (they also narrow the wake-up watches)."""
    for _, group, version, plural, _ in OWNED_RESOURCES:
        settings.watching.label_selectors[group, version, plural] = OWNED_LABEL_SELECTOR
    settings.watching.field_selectors["", "v1", "secrets"] = SECRET_FIELD_SELECTOR


# What Kopf still reads of an indexed object after its index function (kopf 1.45: the
# wake-ups' label filters, its per-object memory by uid, the handlers' logs by name).
KEPT_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata"})
KEPT_METADATA = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "labels", "deletionTimestamp"}
)


def _kopf_raw(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The raw dict behind a kopf.Body (its `_src`, an internal of Kopf 1.45.x, pinned in
    pyproject.toml); None for any other mapping (the API path's own objects)."""
    raw = getattr(body, "_src", None)
    return raw if isinstance(raw, dict) else None


def shed(body: Mapping[str, Any]) -> None:
    """Empty the raw object Kopf holds once it is indexed, keeping only KEPT_*.

    Kopf (1.45.x, pinned in pyproject.toml) keeps each event's raw dict while the object's
    worker waits for every index to be filled (at a start, all of them at once: ~360 KiB per
    ItemService of Deployments, revisions, Jobs, Pods and Secrets with their managedFields) and
    for its idle timeout after; the record holds all a pass reads. Secrets' values go too.
    The raw dict is kopf.Body's source (_kopf_raw): the unit test test_cache_shed.py runs
    Kopf's own event processing, indexes and wake-ups over it."""
    raw = _kopf_raw(body)
    if raw is None:
        return
    for key in [k for k in raw if k not in KEPT_TOP_LEVEL]:
        del raw[key]
    meta = raw.get("metadata")
    if isinstance(meta, dict):
        for key in [k for k in meta if k not in KEPT_METADATA]:
            del meta[key]


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


def index_function(kind: str, by: str) -> Callable[..., dict[tuple[str, ...], Any]]:
    """The indexing function of one kind: raw object -> {key: reduced record}; the raw object
    is shed once reduced."""

    def index(body: Mapping[str, Any], **_: Any) -> dict[tuple[str, ...], Any]:
        obj = dict(body)
        meta = obj["metadata"]
        namespace = str(meta.get("namespace") or "")
        PHANTOMS.touched((kind, namespace, str(meta["name"])))
        found: dict[tuple[str, ...], Any]
        if by == BY_NAME:
            found = {(namespace, str(meta["name"])): reduce_named(kind, obj)}
        else:
            found = {instance_key(obj): _REDUCERS[kind](obj)}
        shed(body)
        return found

    index.__name__ = index.__qualname__ = index_id(kind)
    return index


def index_secret(body: Mapping[str, Any], **_: Any) -> dict[tuple[str, ...], Any]:
    obj = dict(body)
    meta = obj["metadata"]
    namespace = str(meta.get("namespace") or "")
    PHANTOMS.touched(("Secret", namespace, str(meta["name"])))
    found: dict[tuple[str, ...], Any] = {(namespace, str(meta["name"])): reduce_secret(obj)}
    shed(body)
    return found


_registered = False


def register_indexes() -> None:
    """Register the indexes with Kopf (only with --cache-reads on: each is a watch), once per
    process: Kopf would run a second copy of each on the same event, after the first has shed
    the body (shed), and the second record, reduced from the skeleton, would replace the first
    (no owner: every owned object a conflict). In-process tests start operators repeatedly."""
    global _registered
    if _registered:
        return
    _registered = True
    labels = {LABEL_NAME: APP_NAME}  # the server-side selector, checked again client-side
    for kind, group, version, plural, by in OWNED_RESOURCES:
        kopf.index(group, version, plural, id=index_id(kind), labels=labels)(
            on_the_loop(index_function(kind, by))
        )
    kopf.index("", "v1", "secrets", id=index_id("Secret"))(on_the_loop(index_secret))


class ObjectCache:
    """reads.IndexView over Kopf's indexes (as handlers receive them in their kwargs)."""

    def __init__(self, indexes: Mapping[str, Any]) -> None:
        self.indexes = indexes

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> ObjectCache | None:
        found = {k.removeprefix(INDEX_PREFIX): v for k, v in kwargs.items() if _is_index(k)}
        return cls(found) if found else None

    def one(self, index: str, key: tuple[str, ...]) -> Any | None:
        return next(iter(self.all(index, key)), None)

    def all(self, index: str, key: tuple[str, ...]) -> list[Any]:
        store = self.indexes[index].get(key)
        if store is None:
            return []
        return [r for r in store if not PHANTOMS.hides((index, key[0], record_name(r)))]

    async def audit(self, client: AsyncClient, namespace: str) -> None:
        await PHANTOMS.audit_if_due(client, namespace, lambda kind: self.names(kind, namespace))

    def names(self, kind: str, namespace: str) -> set[str]:
        """The objects of `kind` in `namespace` the index holds, phantoms included."""
        index = self.indexes.get(kind) or {}
        return {
            record_name(r) for key, store in index.items() if key[0] == namespace for r in store
        }

    def size(self, index: str) -> int:
        return sum(len(store) for store in self.indexes[index].values())


def record_name(record: Any) -> str:
    return str(record.pod.name if isinstance(record, PodRecord) else record.name)


def _is_index(name: str) -> bool:
    return name.startswith(INDEX_PREFIX)


_GAUGED: set[str] = set()


def export_sizes(cache: ObjectCache) -> None:
    """items_operator_cache_objects{kind}, counted when scraped (once per process)."""
    for kind in cache.indexes:
        if kind in _GAUGED:
            continue
        _GAUGED.add(kind)
        metrics.CACHE_OBJECTS.labels(kind).set_function(functools.partial(cache.size, kind))
