"""The informers (informers.py) against the real API server, no operator: a listing in pages,
a watch that keeps the store, a relist after deletions it did not see (they are gone from the
store and wake their owners, as events would have), and a watch resumed from a very old
resourceVersion (the server replays or answers 410: the store ends right either way)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from items_operator import cache, informers, metrics
from items_operator.constants import APP_NAME, LABEL_INSTANCE, LABEL_NAME
from items_operator.informers import Informer
from items_operator.kopf_settings import watch_timeouts
from items_operator.kube_proxy import http_client
from lightkube import AsyncClient

from tests.cluster.kube_support import Kubectl, fresh_namespace
from tests.operator.cluster.in_process import counter_total

pytestmark = pytest.mark.cluster

SERVICES = 5
PAGE = 2
WITHIN = 10.0  # a watch event reaches the store well within this on the local API server
# Older than anything a running API server keeps: a watch from it is answered 410.
ANCIENT_VERSION = "1"


@pytest.fixture(scope="module")
def namespace() -> Iterator[Kubectl]:
    with fresh_namespace(f"items-informer-{secrets.token_hex(3)}") as kube:
        yield kube


def _service(name: str, instance: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance}},
        "spec": {"ports": [{"port": 80}]},
    }


async def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WITHIN
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WITHIN:g} s: {what}")
        await asyncio.sleep(0.05)


def test_pages_a_watch_and_a_relist_after_410_keep_the_store_true(
    namespace: Kubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = namespace.namespace
    for n in range(SERVICES):
        namespace.apply(_service(f"svc-{n}", f"shop-{n}"))
    unlabelled = _service("not-ours", "shop-0")
    del unlabelled["metadata"]["labels"][LABEL_NAME]
    namespace.apply(unlabelled)
    monkeypatch.setattr(informers, "LIST_PAGE", PAGE)
    source = next(s for s in cache.sources() if s.kind == "Service")

    async def scenario() -> None:
        client = AsyncClient()
        woken: list[tuple[str, str, str, str]] = []
        informer = Informer(
            http_client(client), source, ns, watch_timeouts(), lambda *a: woken.append(a)
        )
        try:
            pages = counter_total(metrics.WATCH_REQUESTS)
            await informer.relist()
            assert informer.synced.is_set()
            assert informer.store.names(ns) == {f"svc-{n}" for n in range(SERVICES)}
            assert counter_total(metrics.WATCH_REQUESTS) - pages == -(-SERVICES // PAGE)
            assert {w[3] for w in woken} == {f"shop-{n}" for n in range(SERVICES)}

            task = asyncio.create_task(informer.run())
            woken.clear()
            await asyncio.to_thread(namespace.apply, _service("svc-new", "shop-new"))
            await _until("the new Service's event", lambda: "svc-new" in informer.store.names(ns))
            assert woken == [("Service", ns, "svc-new", "shop-new")]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

            # Not watching: two deletions go unseen; a relist (what a 410 leads to) finds them.
            await asyncio.to_thread(namespace.run, "delete", "service", "svc-0", "svc-1")
            woken.clear()
            await informer.relist()
            assert informer.store.names(ns) == {"svc-2", "svc-3", "svc-4", "svc-new"}
            assert sorted(w[2] for w in woken) == ["svc-0", "svc-1"]  # their owners woken

            # A resume from a version long gone: the server replays from it (etcd still has
            # it) or answers 410 (then: a relist); either way the store ends right.
            await asyncio.to_thread(namespace.run, "delete", "service", "svc-2")
            informer.version, expired = ANCIENT_VERSION, _restarts("expired")
            task = asyncio.create_task(informer.run())
            await _until("svc-2 gone", lambda: "svc-2" not in informer.store.names(ns))
            assert informer.store.names(ns) == {"svc-3", "svc-4", "svc-new"}
            answer = "410, relisted" if _restarts("expired") > expired else "replayed"
            os.write(1, f"\nresumed from resourceVersion 1: {answer}\n".encode())
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await client.close()

    asyncio.run(scenario())


def _restarts(reason: str) -> float:
    return sum(
        s.value
        for m in metrics.WATCH_RESTARTS.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels["reason"] == reason
    )
