"""The informers' stores (store.py) and their event handling (Informer.apply), over generated
event sequences: the store is always what the events and listings say exists, indexed by the
keys the reads ask with, and only a real change wakes anyone."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from items_operator import cache
from items_operator.informers import ExpiredError, Informer, RefusedError, UnavailableError
from items_operator.kopf_settings import watch_timeouts
from items_operator.store import Entry, Store

from . import cluster_objects as k
from .world import OWNER, V1

NS = OWNER.namespace
NAMES = ("a", "b", "c")
INSTANCES = ("shop", "other")


def _entry(name: str, version: int, instance: str, named: bool) -> Entry:
    """By name (a Deployment, a Service) or by instance and component (pods, Jobs)."""
    key = (NS, name) if named else (NS, instance, "server")
    return Entry((NS, name), key, instance, str(version), f"{name}@{version}")


entries = st.builds(
    _entry, st.sampled_from(NAMES), st.integers(1, 4), st.sampled_from(INSTANCES), st.booleans()
)
steps = st.one_of(
    st.tuples(st.just("put"), entries),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("replace"), st.lists(entries, max_size=3)),
)


def _check(store: Store, model: dict[tuple[str, str], Entry]) -> None:
    assert store.entries == model
    by_key: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for obj, entry in model.items():
        by_key.setdefault(entry.key, set()).add(obj)
    indexed = {key: objs for key, objs in by_key.items() if key not in objs}
    assert {key: set(objs) for key, objs in store.by_key.items()} == indexed  # no empty keys
    for key, objs in by_key.items():
        assert {e.record for e in store.get(key)} == {model[o].record for o in objs}
    for name in NAMES:  # a key nothing has answers nothing, whichever kind of key
        for key in ((NS, name), (NS, name, "server")):
            if key not in by_key:
                assert list(store.get(key)) == []
    assert store.names(NS) == {name for _, name in model}


@given(st.lists(steps, max_size=30))
def test_the_store_is_what_the_events_and_listings_say(sequence: list[Any]) -> None:
    """Each change names what was and what is, so both owners can be woken (an object whose
    instance label moved leaves one ItemService and joins another)."""
    store, model = Store(), dict[tuple[str, str], Entry]()
    for step, arg in sequence:
        if step == "put":
            old = model.get(arg.object)
            put = store.put(arg)
            unchanged = old is not None and (old.version, old.key) == (arg.version, arg.key)
            assert put == (None if unchanged else (old, arg))
            if put is not None:
                model[arg.object] = arg
        elif step == "delete":
            old = model.pop((NS, arg), None)
            assert store.delete((NS, arg)) == (None if old is None else (old, None))
        else:
            listing = {e.object: e for e in arg}
            changes = store.replace(listing)
            moved = {
                o
                for o, e in listing.items()
                if o not in model or (model[o].version, model[o].key) != (e.version, e.key)
            }
            expected: set[tuple[Entry | None, Entry | None]]
            expected = {(model[o], None) for o in set(model) - set(listing)}
            expected |= {(model.get(o), listing[o]) for o in moved}
            assert len(changes) == len(expected)
            assert set(changes) == expected  # each wakes its owners; nothing else does
            kept = {o: model[o] for o in listing if o in model and o not in moved}
            model = {**listing, **kept}
        _check(store, model)


def _informer() -> tuple[Informer, list[tuple[str, str, str, str]]]:
    woken: list[tuple[str, str, str, str]] = []
    source = next(s for s in cache.sources() if s.kind == "Pod")
    http: Any = None  # apply() makes no request
    informer = Informer(http, source, NS, watch_timeouts(), lambda *a: woken.append(a))
    return informer, woken


def _pod(name: str, version: int) -> dict[str, Any]:
    return k.pod(k.meta(name, NS, version, labels=k.labels(OWNER, "server")), V1, ready=True)


def test_watch_events_keep_the_store_and_wake_on_real_changes_only() -> None:
    informer, woken = _informer()
    informer.apply({"type": "ADDED", "object": _pod("shop-1", 5)})
    informer.apply({"type": "MODIFIED", "object": _pod("shop-1", 5)})  # replayed: same version
    assert woken == [("Pod", NS, "shop-1", OWNER.name)]
    assert informer.version == "5"
    bookmark = {"kind": "Pod", "metadata": {"resourceVersion": "9"}}
    informer.apply({"type": "BOOKMARK", "object": bookmark})
    assert (informer.version, len(woken)) == ("9", 1)  # a bookmark moves the resume point only
    informer.apply({"type": "DELETED", "object": _pod("shop-1", 11)})
    assert woken[-1] == ("Pod", NS, "shop-1", OWNER.name)
    assert len(informer.store) == 0
    assert informer.version == "11"


def test_an_expired_watch_lists_again_a_refusal_distrusts_the_view_the_rest_waits() -> None:
    informer, _ = _informer()
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    with pytest.raises(ExpiredError):
        informer.apply({"type": "ERROR", "object": gone})
    with pytest.raises(RefusedError, match="403"):
        informer.apply({"type": "ERROR", "object": {"code": 403, "reason": "Forbidden"}})
    for code in (429, 500, 504):  # the server cannot answer now: the view stays
        with pytest.raises(UnavailableError, match=str(code)):
            informer.apply({"type": "ERROR", "object": {"code": code, "message": "etcd"}})
