"""What the caches hold per ItemService (issue 13: marginal memory <= 50 KiB per ItemService),
measured with tracemalloc over 1,000 synthetic ItemServices' objects as the API server sends
them (run with -s to see the figures)."""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from items_operator import cache
from items_operator.audit import PHANTOMS
from items_operator.model import Owner
from items_operator.store import Store

from . import cluster_objects as k
from .world import OWNER, available_world

COUNT = 1000
BUDGET = 50 * 1024
_BY = {kind: by for kind, _, _, _, by in cache.OWNED_RESOURCES}


def _fleet_objects(count: int, pods: int, releases: int) -> list[list[str]]:
    """Each ItemService: its Deployment and `releases` stored releases (the builders' template,
    via the simulated cluster), SA, Service, PDB, a Job, `pods` pods and its Secret, with
    managedFields, as JSON text: decoded while traced, as the watch stream decodes them."""
    world = available_world()
    assert world.deployment is not None
    base: list[dict[str, Any]] = []
    fleet = []
    for n in range(count):
        owner = replace(OWNER, name=f"shop-{n}", uid=f"uid-{n}")

        def m(
            name: str, component: str = "server", owner: Owner = owner, n: int = n
        ) -> dict[str, Any]:
            return k.meta(
                name, owner.namespace, n, controller=owner.uid, labels=k.labels(owner, component)
            )

        deployment = copy.deepcopy(world.deployment)
        deployment["kind"] = "Deployment"
        deployment["metadata"] = m(owner.name) | {"generation": 1}
        revisions = []
        [raw] = world.revisions.values()
        for number in range(releases):
            revision = copy.deepcopy(raw)
            revision["revision"] = number + 1
            revision["data"]["template"]["metadata"]["annotations"]["n"] = str(number)
            # Unique in the namespace, as the API server's names are (a store keys by them).
            revision["metadata"] = m(f"{owner.name}-{raw['metadata']['name']}-{number}") | {
                "labels": raw["metadata"]["labels"] | k.labels(owner, "server"),
                "annotations": raw["metadata"].get("annotations") or {},
            }
            revisions.append(revision)
        base = [
            deployment,
            *revisions,
            *(
                k.supporting(kind, m(owner.name), "0123456789abcdef")
                for kind in ("ServiceAccount", "Service", "PodDisruptionBudget")
            ),
            k.job(m(f"{owner.name}-migration-0123456789", "migration"), "img:1", "Complete"),
            *(k.pod(m(f"{owner.name}-{i}"), "img:1", ready=True) for i in range(pods)),
            k.secret(k.meta(f"{owner.name}-db", owner.namespace, n), {"url": "bXlzcWw6Ly8="}),
        ]
        fleet.append([json.dumps(obj) for obj in base])
    return fleet


def _measure(build: Callable[[Any], object], arg: Any) -> int:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build(arg)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert kept is not None
    return after - before


def _index(fleet: list[list[str]]) -> dict[str, Store]:
    """The entries as the informers' stores hold them; each raw object is dropped once
    reduced."""
    stores: dict[str, Store] = defaultdict(Store)
    for texts in fleet:
        for text in texts:
            obj = json.loads(text)
            entry = cache.entry(obj["kind"], obj)
            stores[obj["kind"]].put(entry)
            PHANTOMS.touched((obj["kind"], *entry.object))  # as the informers stamp each
    return stores


@pytest.mark.slow
def test_cache_records_per_item_service_fit_the_budget() -> None:
    for pods, releases in ((0, 1), (2, 10)):
        fleet = _fleet_objects(COUNT, pods, releases)
        objects = sum(len(objs) for objs in fleet)
        PHANTOMS.seen.clear()  # the audit's stamps of each object count too
        records = _measure(_index, fleet) / COUNT
        kept = _index(fleet)
        assert sum(len(store) for store in kept.values()) == objects  # none lost by name
        print(
            f"\n{pods} pods, {releases} releases, {objects // COUNT} objects per ItemService: "
            f"store entries {records / 1024:.1f} KiB"
        )
        assert records < BUDGET
