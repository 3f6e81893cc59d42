"""Phantom records: what Kopf's indexes keep of objects deleted while a watch relisted is found
by an audit (one LIST per kind and namespace) and hidden from the reads."""

from __future__ import annotations

import asyncio

from items_operator.audit import PHANTOMS as SHARED
from items_operator.audit import Phantoms
from items_operator.cache import ObjectCache, entry
from items_operator.store import Store

from . import cluster_objects as k
from .world import OWNER, V1

NS = OWNER.namespace


def _audit(
    phantoms: Phantoms,
    listed: dict[str, set[str]],
    during: object = None,
    indexed: dict[str, set[str]] | None = None,
) -> None:
    """An audit of NS; the indexes hold what was touched, unless `indexed` says otherwise."""

    async def listing(kind: str) -> set[str]:
        if callable(during):
            during(kind)
        return listed.get(kind, set())

    def held(kind: str) -> set[str]:
        if indexed is not None:
            return indexed.get(kind, set())
        return {name for (k, ns, name) in [*phantoms.seen, *phantoms.phantoms] if k == kind}

    asyncio.run(phantoms.audit(NS, listing, held))


def test_a_record_the_audit_did_not_list_is_hidden_until_its_object_comes_back() -> None:
    phantoms = Phantoms()
    phantoms.touched(("Pod", NS, "shop-a"))
    phantoms.touched(("Pod", NS, "shop-gone"))
    phantoms.touched(("Pod", "elsewhere", "shop-gone"))
    _audit(phantoms, {"Pod": {"shop-a"}})
    assert phantoms.hides(("Pod", NS, "shop-gone"))
    assert not phantoms.hides(("Pod", NS, "shop-a"))
    assert not phantoms.hides(("Pod", "elsewhere", "shop-gone"))  # not this audit's namespace
    phantoms.touched(("Pod", NS, "shop-gone"))  # created again under the name: an event
    assert not phantoms.hides(("Pod", NS, "shop-gone"))


def test_an_object_whose_event_arrives_during_the_audit_is_never_a_phantom() -> None:
    phantoms = Phantoms()
    phantoms.touched(("Job", NS, "shop-migration-1"))

    def created_meanwhile(kind: str) -> None:
        if kind == "Job":
            phantoms.touched(("Job", NS, "shop-migration-1"))  # created after the LIST ran

    _audit(phantoms, {}, created_meanwhile)
    assert not phantoms.hides(("Job", NS, "shop-migration-1"))


def test_a_namespace_is_audited_on_return_and_then_every_interval() -> None:
    phantoms = Phantoms(interval=600.0)
    assert phantoms.due(NS, now=0.0)
    _audit(phantoms, {})
    started = phantoms.audited[NS]
    assert not phantoms.due(NS, now=started + 10)
    assert phantoms.due(NS, now=started + 601)
    phantoms.restarted(NS)  # its daemons stopped: peering paused the watches
    assert phantoms.due(NS, now=started + 10)


def test_the_cache_reads_skip_phantoms() -> None:
    pod = k.pod(k.meta("shop-gone", NS, 1, labels=k.labels(OWNER, "server")), V1, ready=False)
    store = Store()
    store.put(entry("Pod", pod))
    cache = ObjectCache({("Pod", NS): store})
    assert len(cache.all("Pod", (NS, OWNER.name, "server"))) == 1
    try:
        SHARED.phantoms.add(("Pod", NS, "shop-gone"))
        assert cache.all("Pod", (NS, OWNER.name, "server")) == []
    finally:
        SHARED.phantoms.discard(("Pod", NS, "shop-gone"))


def test_an_object_deleted_with_its_event_is_forgotten_not_hidden() -> None:
    """Kopf drops it from the index on DELETED: the audit keeps no trace of it (no growth)."""
    phantoms = Phantoms()
    phantoms.touched(("Pod", NS, "shop-old"))
    _audit(phantoms, {}, indexed={})
    assert ("Pod", NS, "shop-old") not in phantoms.seen
    assert not phantoms.phantoms
    phantoms.phantoms.add(("Pod", NS, "shop-phantom"))
    _audit(phantoms, {}, indexed={})  # the index lost it meanwhile (a later relist, say)
    assert not phantoms.phantoms
