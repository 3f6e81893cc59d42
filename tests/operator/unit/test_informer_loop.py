"""The informer's loop (Informer.run) against answers the real API server does not give on
demand here: a watch that ends at once with nothing (a proxy closing streams), a watch that
expires every time, a continue token that expires mid-listing, a watch refused after a good
list. httpx's in-process MockTransport stands in for the server (no socket is opened); the
waits are recorded instead of slept. The paths the real server does give (pages, events, a
relist) are tested against it in tests/operator/cluster/test_informer_api.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx
import pytest
from items_operator import cache
from items_operator.informers import (
    LIST_PAGE,
    RETRY_CEILING,
    Informer,
    retry_delay,
)
from items_operator.kopf_settings import watch_timeouts

from . import cluster_objects as k
from .world import OWNER, V1

NS = OWNER.namespace
ROUNDS = 8
Answer = Callable[[httpx.Request], httpx.Response]


class Stop(BaseException):
    """Ends the loop from its sleep (as a cancellation would)."""


def _pod(name: str, version: int, instance: str = OWNER.name) -> dict[str, Any]:
    owner = replace(OWNER, name=instance)
    return k.pod(k.meta(name, NS, version, labels=k.labels(owner, "server")), V1, ready=True)


def _listing(items: list[dict[str, Any]], version: str = "10", token: str = "") -> httpx.Response:
    return httpx.Response(
        200, json={"metadata": {"resourceVersion": version, "continue": token}, "items": items}
    )


def _stream(*events: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, content="".join(json.dumps(e) + "\n" for e in events).encode())


def _run(answer: Answer, rounds: int = ROUNDS) -> tuple[Informer, list[float], list[Any]]:
    """The loop until it has waited `rounds` times; its waits and its requests' parameters."""
    requests: list[httpx.Request] = []
    waits: list[float] = []
    woken: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer(request)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= rounds:
            raise Stop

    async def scenario() -> Informer:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.invalid") as http:
            source = next(s for s in cache.sources() if s.kind == "Pod")
            informer = Informer(http, source, NS, watch_timeouts(), lambda *a: woken.append(a))
            informer.sleep = sleep
            with pytest.raises(Stop):
                await informer.run()
            return informer

    informer = asyncio.run(scenario())
    return informer, waits, [r.url.params for r in requests]


def _watching(request: httpx.Request) -> bool:
    return bool(request.url.params.get("watch") == "true")


def _doubling(waits: list[float]) -> None:
    for n, wait in enumerate(waits, start=1):
        base = min(2.0 ** (n - 1), RETRY_CEILING)
        assert 0.8 * base <= wait <= 1.2 * base, waits


def test_a_watch_that_ends_at_once_with_nothing_waits_longer_each_time() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _stream() if _watching(request) else _listing([_pod("shop-1", 5)])

    informer, waits, requests = _run(answer)
    _doubling(waits)  # 1, 2, 4, ... s: never a hot loop
    assert len(requests) == 1 + ROUNDS  # one list, then one watch per wait
    assert informer.synced.is_set()  # the view stays: nothing says it is wrong


def test_an_expiry_relists_at_once_then_backs_off() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}

    def answer(request: httpx.Request) -> httpx.Response:
        return _stream(gone) if _watching(request) else _listing([])

    _, waits, requests = _run(answer)
    assert waits[0] == 0.0  # the first relist at once
    _doubling(waits[1:])
    lists = [params for params in requests if params.get("watch") != "true"]
    assert len(lists) == ROUNDS  # each expiry lists again, each after its wait


def test_an_expired_continue_token_is_followed_by_one_unpaged_list() -> None:
    pods = [_pod(f"shop-{n}", n) for n in range(3)]

    def answer(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if _watching(request):
            return _stream()
        if params.get("continue"):
            return httpx.Response(410, json={"kind": "Status", "code": 410})
        if params.get("limit"):
            return _listing(pods[:1], "10", token="next")
        return _listing(pods, "12")

    informer, _, requests = _run(answer, rounds=1)
    lists = [params for params in requests if params.get("watch") != "true"]
    assert [(p.get("limit"), p.get("continue")) for p in lists] == [
        (str(LIST_PAGE), None),
        (str(LIST_PAGE), "next"),
        (None, None),
    ]
    assert informer.store.names(NS) == {"shop-0", "shop-1", "shop-2"}
    assert (informer.version, informer.synced.is_set()) == ("12", True)


def test_a_refused_watch_takes_the_view_away_until_a_list_succeeds() -> None:
    watches = [0]

    def answer(request: httpx.Request) -> httpx.Response:
        if not _watching(request):
            return _listing([])
        watches[0] += 1
        if watches[0] <= 2:
            return httpx.Response(403, json={"kind": "Status", "code": 403, "reason": "Forbidden"})
        return _stream({"type": "ADDED", "object": _pod("shop-1", 11)})

    informer, waits, requests = _run(answer, rounds=2)
    _doubling(waits)
    assert not informer.synced.is_set()  # the passes of this namespace wait
    assert informer.version is None  # the next round lists again
    assert [p.get("watch") for p in requests] == [None, "true"] * 2

    informer, waits, requests = _run(answer, rounds=1)  # the role fixed: a list, a watch
    assert informer.synced.is_set()
    assert informer.store.names(NS) == {"shop-1"}
    assert waits == [0.0]  # it delivered an event: resumed at once


def test_a_slow_list_before_a_refused_watch_still_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Progress is the watch's: a list that takes long (a big namespace) followed by a watch
    refused at once must not relist every second."""
    clock = [0.0]
    # The informer's clock only (asyncio's loop keeps the real one).
    monkeypatch.setattr(
        "items_operator.informers.time", SimpleNamespace(monotonic=lambda: clock[0])
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if _watching(request):
            return httpx.Response(403, json={"kind": "Status", "code": 403})
        clock[0] += 5.0  # the listing took 5 s
        return _listing([])

    _, waits, _ = _run(answer, rounds=4)
    _doubling(waits)


def test_an_unavailable_server_keeps_the_view_and_resumes_where_it_was() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if _watching(request):
            return httpx.Response(503, text="the server is restarting")
        return _listing([_pod("shop-1", 5)], "10")

    informer, waits, requests = _run(answer, rounds=4)
    _doubling(waits)
    assert informer.synced.is_set()  # the passes go on with what they know
    assert informer.store.names(NS) == {"shop-1"}
    assert [p.get("watch") for p in requests] == [None] + ["true"] * 4  # one list only
    assert {p.get("resourceVersion") for p in requests[1:]} == {"10"}


def test_a_watch_that_delivered_events_and_was_cut_resumes_at_once() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if not _watching(request):
            return _listing([], "10")
        version = int(request.url.params["resourceVersion"]) + 1
        event = {"type": "ADDED", "object": _pod(f"shop-{version}", version)}
        return httpx.Response(200, content=(json.dumps(event) + "\n{").encode())  # cut mid-event

    _, waits, _ = _run(answer, rounds=4)
    assert waits == [0.0] * 4  # progress each round: no backoff builds up


def test_retry_delays_start_at_nothing_and_are_bounded() -> None:
    assert retry_delay(0) == 0.0
    assert all(0.8 <= retry_delay(1) <= 1.2 for _ in range(20))
    assert all(retry_delay(n) <= 1.2 * RETRY_CEILING for n in range(1, 40))


def test_a_pod_moved_to_another_item_service_wakes_both_and_a_deletion_needs_no_body() -> None:
    woken: list[tuple[str, str, str, str]] = []
    source = next(s for s in cache.sources() if s.kind == "Pod")
    http: Any = None  # apply() makes no request
    informer = Informer(http, source, NS, watch_timeouts(), lambda *a: woken.append(a))
    informer.apply({"type": "ADDED", "object": _pod("p", 1)})
    informer.apply({"type": "MODIFIED", "object": _pod("p", 2, instance="other")})
    assert [w[3] for w in woken] == [OWNER.name, OWNER.name, "other"]
    woken.clear()
    bare = {"kind": "Pod", "metadata": {"name": "p", "namespace": NS, "resourceVersion": "3"}}
    informer.apply({"type": "DELETED", "object": bare})  # a body the reducer cannot read
    assert [w[3] for w in woken] == ["other"]
    assert len(informer.store) == 0
