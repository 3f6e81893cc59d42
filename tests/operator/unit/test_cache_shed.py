"""Shedding Kopf's raw bodies (cache.shed, cache.shed_item_service): Kopf's own event
processing (the pinned 1.45.x) indexes an owned object, runs the wake-ups with the labels they
filter and read, and is left holding a skeleton (no managedFields, no spec, no Secret value);
of an ItemService it keeps all a pass reads, not its managedFields."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import kopf
from items_operator import cache, wakeups
from items_operator.constants import ANNOTATION_ALLOW_CONTRACT, GROUP, PLURAL, VERSION
from items_operator.kopf_settings import apply_settings, on_the_loop
from items_operator.records import NamedRecord, SecretRecord
from kopf._cogs.structs.bodies import RawEvent
from kopf._cogs.structs.ephemera import AnyMemo, Memo
from kopf._cogs.structs.references import Resource
from kopf._core.engines.indexing import OperatorIndexers
from kopf._core.reactor.inventory import ResourceMemories
from kopf._core.reactor.processing import process_resource_event

from . import cluster_objects as k
from .world import OWNER, V2

NS = OWNER.namespace


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    apply_settings(settings)  # the operator's own (its idle timeout, its storages)
    return settings


def _process(
    resource: Resource, kind: str, raw: dict[str, Any], by: str | None
) -> tuple[OperatorIndexers, list[dict[str, Any]]]:
    """One ADDED event through Kopf's processing with our index function and a wake-up."""
    registry = kopf.OperatorRegistry()
    group, version, plural = resource.group, resource.version, resource.plural
    function = cache.index_secret if by is None else cache.index_function(kind, by)
    kopf.index(group, version, plural, id=cache.index_id(kind), registry=registry)(
        on_the_loop(function)
    )
    woken: list[dict[str, Any]] = []

    def wake(name: str | None, namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        woken.append({"name": name, "namespace": namespace, "labels": dict(labels)})

    kopf.on.event(group, version, plural, registry=registry)(on_the_loop(wake))
    indexers = OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())
    _event(registry, indexers, resource, "ADDED", raw)
    return indexers, woken


def _event(
    registry: kopf.OperatorRegistry,
    indexers: OperatorIndexers,
    resource: Resource,
    type_: str,
    raw: dict[str, Any],
) -> None:
    """One watch event of `raw` through Kopf's own processing (no API server: nothing to
    patch for these handlers)."""

    async def run() -> None:
        await process_resource_event(
            lifecycle=kopf.lifecycles.all_at_once,
            indexers=indexers,
            registry=registry,
            settings=_settings(),
            memories=ResourceMemories(),
            memobase=cast(AnyMemo, Memo()),
            resource=resource,
            raw_event=cast(RawEvent, {"type": type_, "object": raw}),
            event_queue=asyncio.Queue(),
            no_throttling=True,
        )

    asyncio.run(run())


def test_kopf_keeps_a_skeleton_of_an_indexed_deployment_and_the_wake_up_still_sees_it() -> None:
    labels = k.labels(OWNER, "server")
    raw = k.deployment(k.meta("shop", NS, 7, controller=OWNER.uid, labels=labels), V2, "r2", 1)
    original = copy.deepcopy(raw)
    resource = Resource("apps", "v1", "deployments", kind="Deployment", namespaced=True)
    indexers, woken = _process(resource, "Deployment", raw, cache.BY_NAME)

    [record] = indexers.indices[cache.index_id("Deployment")][(NS, "shop")]
    assert isinstance(record, NamedRecord)
    deployment = record.observed_deployment()
    assert deployment is not None
    assert deployment.template == original["spec"]["template"]  # the record has what passes read
    assert woken == [{"name": "shop", "namespace": NS, "labels": labels}]
    assert "metadata" in raw
    assert set(raw) <= cache.KEPT_TOP_LEVEL
    assert set(raw["metadata"]) <= cache.KEPT_METADATA
    assert raw["metadata"]["resourceVersion"] == "7"
    assert "managedFields" in original["metadata"]
    assert "managedFields" not in raw["metadata"]
    assert "spec" not in raw


def test_kopf_keeps_no_secret_value_once_indexed() -> None:
    raw = k.secret(k.meta("shop-db", NS, 3), {"url": "bXlzcWw6Ly9zZWNyZXQ="})
    resource = Resource("", "v1", "secrets", kind="Secret", namespaced=True)
    indexers, woken = _process(resource, "Secret", raw, None)

    [record] = indexers.indices[cache.index_id("Secret")][(NS, "shop-db")]
    assert isinstance(record, SecretRecord)
    assert set(record.digests) == {"url"}
    assert [w["name"] for w in woken] == ["shop-db"]
    assert "data" not in raw
    assert "bXlzcWw6Ly9zZWNyZXQ=" not in repr(raw)


def test_a_plain_mapping_is_left_alone() -> None:
    """The API path reduces objects it owns, not Kopf's: shed touches only kopf.Body sources."""
    raw = k.secret(k.meta("shop-db", NS, 3), {"url": "eA=="})
    before = copy.deepcopy(raw)
    cache.shed(raw)
    assert raw == before


def test_an_item_service_keeps_what_a_pass_reads_and_loses_managed_fields() -> None:
    """The ItemService's wake-up sheds what nobody reads of the body Kopf keeps for its daemon:
    managedFields and kubectl's last-applied copy; spec, status, finalizers and every other
    annotation stay (the pass reads them live)."""
    registry = kopf.OperatorRegistry()
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)(on_the_loop(wakeups.wake_reconciler))
    raw: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ItemService",
        "metadata": k.meta("shop", NS, 9)
        | {
            "finalizers": ["example.com/keep"],  # not Kopf's: this registry has no daemon
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}',
                ANNOTATION_ALLOW_CONTRACT: "abc",
            },
        },
        "spec": {"image": V2},
        "status": {"phase": "Available"},
    }
    kept = copy.deepcopy(raw)
    del kept["metadata"]["managedFields"]
    del kept["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    resource = Resource(GROUP, VERSION, PLURAL, kind="ItemService", namespaced=True)
    _event(registry, OperatorIndexers(), resource, "MODIFIED", raw)
    assert raw == kept


def test_the_indexes_are_registered_once_however_often_asked() -> None:
    """A second copy of an index function would reduce the body the first had shed."""
    cache.register_indexes()
    cache.register_indexes()
    ids = [h.id for h in kopf.get_default_registry()._indexing.get_all_handlers()]
    cached = [i for i in ids if i.startswith(cache.INDEX_PREFIX)]
    assert sorted(cached) == sorted(set(cached))
    assert len(cached) == len(cache.OWNED_RESOURCES) + 1  # and the Secrets'
