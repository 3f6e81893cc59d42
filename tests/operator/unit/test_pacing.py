"""When passes run with --cache-reads on: resync instead of the idle poll, bounded concurrency
with ItemServices in motion first, first passes spread after a start."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import kopf
import pytest
from hypothesis import given
from hypothesis import strategies as st
from items_operator import wakeups
from items_operator.constants import LABEL_INSTANCE
from items_operator.main import parse_args, reads_from_caches
from items_operator.pacing import (
    MOTION_RESYNC_SECONDS,
    PassLimiter,
    StartupPacer,
    next_sleep,
)
from items_operator.plan import Plan
from items_operator.policy import IDLE_POLL

# Kopf's own test of a handler (internal API; kopf 1.45.2 in uv.lock): what picks the thread.
from kopf._core.actions.invocation import invoke, is_async_fn


def _plan(requeue: float, *, watched: bool = True, wake_after: float | None = None) -> Plan:
    return Plan((), (), {}, requeue, wake_after=wake_after, watched=watched)


@given(st.floats(0.5, IDLE_POLL))
def test_a_pass_that_must_poll_keeps_its_interval_idle_or_not(requeue: float) -> None:
    assert next_sleep(_plan(requeue, watched=False), 600.0, random.Random(1)) == requeue


@given(st.floats(0.5, IDLE_POLL - 0.01), st.integers(0, 2**32))
def test_a_watched_pass_in_motion_waits_for_an_event_or_the_safety_net(
    requeue: float, seed: int
) -> None:
    delay = next_sleep(_plan(requeue, watched=True), 600.0, random.Random(seed))
    assert 0.8 * MOTION_RESYNC_SECONDS <= delay <= 1.2 * MOTION_RESYNC_SECONDS


@given(
    st.floats(0.5, IDLE_POLL * 20),
    st.booleans(),
    st.floats(0.5, 3600.0),
    st.integers(0, 2**32),
)
def test_a_named_deadline_is_never_slept_past(
    requeue: float, watched: bool, deadline: float, seed: int
) -> None:
    plan = _plan(min(requeue, deadline), watched=watched, wake_after=deadline)
    assert next_sleep(plan, 600.0, random.Random(seed)) <= deadline


@given(st.integers(0, 2**32))
def test_an_idle_pass_sleeps_until_the_jittered_resync(seed: int) -> None:
    delay = next_sleep(_plan(IDLE_POLL), 600.0, random.Random(seed))
    assert 480.0 <= delay <= 720.0


def test_resyncs_of_many_item_services_do_not_line_up() -> None:
    rng = random.Random(7)
    delays = [next_sleep(_plan(IDLE_POLL), 600.0, rng) for _ in range(1000)]
    assert len({round(d) for d in delays}) > 200  # spread over the +-20 % band


def test_passes_are_bounded_and_those_in_motion_go_first() -> None:
    async def scenario() -> list[str]:
        limiter, order, running, peak = PassLimiter(2), [], 0, 0
        release = asyncio.Event()

        async def one(name: str, urgent: bool) -> None:
            nonlocal running, peak
            async with limiter.slot(urgent=urgent):
                running += 1
                peak = max(peak, running)
                order.append(name)
                await release.wait()
                running -= 1

        first = [asyncio.create_task(one(n, False)) for n in ("a", "b")]
        await asyncio.sleep(0)
        queued = [
            asyncio.create_task(one(name, urgent))
            for name, urgent in (("idle-1", False), ("rolling", True), ("idle-2", False))
        ]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*first, *queued)
        assert peak == 2
        return order

    order = asyncio.run(scenario())
    assert order[:2] == ["a", "b"]
    assert order[2] == "rolling"
    assert order[3:] == ["idle-1", "idle-2"]


def test_a_cancelled_waiter_does_not_leak_its_slot() -> None:
    async def scenario() -> int:
        limiter = PassLimiter(1)
        async with limiter.slot(urgent=False):
            waiter = asyncio.create_task(limiter.slot(urgent=True).__aenter__())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with limiter.slot(urgent=False):
            pass
        return limiter.free

    assert asyncio.run(scenario()) == 1


def test_first_passes_are_spread_at_the_startup_rate() -> None:
    pacer = StartupPacer(50.0, random.Random(3))
    alone = pacer.delay(now=0.0)
    assert alone < 0.02  # a lone ItemService starts at once
    delays = [pacer.delay(now=0.0) for _ in range(999)]
    assert max(delays) == pytest.approx(20.0, abs=0.05)  # 1,000 over 20 s
    assert sorted(delays) == delays


def test_cache_reads_are_on_wherever_the_owned_objects_are_watched() -> None:
    assert reads_from_caches(parse_args(["--namespace", "a"]))
    assert reads_from_caches(parse_args(["--watch-owned", "on"]))  # the chart, cluster-wide
    assert not reads_from_caches(parse_args([]))  # cluster-wide, per-namespace RoleBindings
    assert not reads_from_caches(parse_args(["--namespace", "a", "--cache-reads", "off"]))
    args = parse_args(["--namespace", "a", "--cache-reads", "on", "--resync-seconds", "120"])
    assert (reads_from_caches(args), args.resync_seconds) == (True, 120.0)
    with pytest.raises(SystemExit):
        parse_args(["--cache-reads", "on"])  # cluster-wide: the watches are off


def test_an_event_of_the_secret_an_item_service_reads_wakes_it() -> None:
    async def scenario() -> tuple[bool, bool]:
        shop = wakeups.enrol("uid-shop", "items", "shop")
        other = wakeups.enrol("uid-other", "items", "other")
        try:
            wakeups.SECRETS["uid-shop"] = ("items", "shop-db")
            wakeups.SECRETS["uid-other"] = ("items", "other-db")
            wakeups.wake_secret_users(namespace="items", name="shop-db")
            return shop.is_set(), other.is_set()
        finally:
            wakeups.leave("uid-shop", "items", "shop")
            wakeups.leave("uid-other", "items", "other")

    assert asyncio.run(scenario()) == (True, False)
    assert "uid-shop" not in wakeups.SECRETS  # forgotten with its loop


def test_no_handler_runs_in_kopfs_thread_pool() -> None:
    """Kopf runs plain functions in threads; the wake-ups set asyncio Events (not thread-safe:
    set from a thread, the waiter wakes only when the loop next wakes for something else).
    Every handler is a coroutine function."""
    from items_operator import handlers

    wakeups.watch_owned_objects()
    registry = kopf.get_default_registry()
    registered = [
        *registry._watching.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
        *registry._activities.get_all_handlers(),
    ]
    assert handlers.reconcile_loop in [h.fn for h in registered]
    # Kopf's own test (it follows __wrapped__), not inspect's: that is what decides the thread.
    assert {h.id for h in registered if not is_async_fn(h.fn)} == set()


def test_a_wake_up_registered_with_kopf_wakes_its_pass_when_kopf_invokes_it() -> None:
    """Through Kopf's own invocation: the handler runs, on the loop, and sets the Event."""

    async def scenario() -> bool:
        wakeup = wakeups.enrol("uid-kopf", "items", "shop")
        wakeups.watch_owned_objects()
        registry = kopf.get_default_registry()
        [wake] = [h for h in registry._watching.get_all_handlers() if h.id == "wake_owner"][:1]
        await invoke(wake.fn, kwargs={"namespace": "items", "labels": {LABEL_INSTANCE: "shop"}})
        return wakeup.is_set()

    assert asyncio.run(scenario())


def test_an_informers_change_wakes_the_owner_or_the_secrets_readers() -> None:
    async def scenario() -> list[bool]:
        shop = wakeups.enrol("uid-shop", "items", "shop")
        other = wakeups.enrol("uid-other", "items", "other")
        wakeups.SECRETS["uid-other"] = ("items", "other-db")
        try:
            wakeups.wake_object("Pod", "items", "shop-1", "shop")
            woken = [shop.is_set(), other.is_set()]
            shop.clear()
            wakeups.wake_object("Secret", "items", "other-db", "")
            wakeups.wake_object("Service", "elsewhere", "shop", "shop")  # not this namespace's
            return [*woken, shop.is_set(), other.is_set()]
        finally:
            wakeups.leave("uid-shop", "items", "shop")
            wakeups.leave("uid-other", "items", "other")

    assert asyncio.run(scenario()) == [True, False, False, True]


def test_auto_turns_the_caches_off_when_the_role_lacks_the_secret_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The access review itself runs against the real API server (test_access_api.py)."""
    from items_operator import main

    answers: list[str | Exception | None] = []

    def review(namespaces: Any) -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(main, "missing_secret_access", review)
    args = parse_args(["--namespace", "shop"])
    answers[:] = [None, "watch secrets in shop", OSError("no route")]
    assert main.caches_permitted(args)
    assert not main.caches_permitted(args)
    assert not main.caches_permitted(args)  # not known: the mode that works under any role
    assert main.caches_permitted(parse_args(["--namespace", "shop", "--cache-reads", "on"]))
    assert not main.caches_permitted(parse_args([]))  # no owned-object watches: no review
    assert answers == []
