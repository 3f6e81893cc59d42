"""Shedding the ItemService body Kopf keeps (cache.shed_item_service), through Kopf's own event
processing (the pinned 1.45.x): it keeps all a pass reads, not its managedFields. (Owned
objects and Secrets are no longer Kopf's to keep: the informers reduce them, informers.py.)"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import kopf
from items_operator import cache, wakeups
from items_operator.constants import ANNOTATION_ALLOW_CONTRACT, GROUP, PLURAL, VERSION
from items_operator.kopf_settings import apply_settings, on_the_loop
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


def test_a_plain_mapping_is_left_alone() -> None:
    """Only kopf.Body sources are Kopf's: a plain mapping is not shed."""
    raw: dict[str, Any] = {"metadata": k.meta("shop", NS, 3)}
    before = copy.deepcopy(raw)
    cache.shed_item_service(raw)
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
