"""Operator upgrades in waves (issue #13): a rollout no spec change asked for (a new operator
version renders another pod template) waits for a slot; a person's change never does; the
first rollback halts the wave."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from items_operator.fleet import SLOT_TIMEOUT, UpgradeWave
from items_operator.specs import deployment

from .world import V2, World, available_world


@pytest.fixture
def upgraded(monkeypatch: pytest.MonkeyPatch) -> Callable[[], World]:
    """An Available ItemService, then the next operator version, which renders the pods
    differently (here: a longer drain delay)."""

    def make() -> World:
        world = available_world(replicas=2)
        assert world.status["history"][-1]["generation"] == 1
        delay = deployment.SHUTDOWN_DELAY_SECONDS + 1
        monkeypatch.setattr(deployment, "SHUTDOWN_DELAY_SECONDS", delay)
        return world

    return make


def test_an_operator_upgrade_waits_for_a_slot_and_the_old_release_serves(
    upgraded: Callable[[], World],
) -> None:
    world = upgraded()
    before = world.deployment
    world.upgrade_slot = False
    plan = world.step()
    assert world.status["reason"] == "UpgradeQueued", world.status["message"]
    assert world.status["phase"] == "Available"
    assert plan.operator_upgrade == "queued"
    assert world.deployment == before
    world.upgrade_slot = True
    plan = world.step()
    assert plan.operator_upgrade == "started"
    assert world.status["history"][-1]["trigger"] == "operator"
    world.upgrade_slot = False  # started: it finishes whatever the wave does next
    world.settle()
    assert world.status["phase"] == "Available"
    assert world.status["reason"] == "RolloutComplete"


def test_a_person_s_change_is_never_queued(upgraded: Callable[[], World]) -> None:
    world = upgraded()
    world.upgrade_slot = False
    world.change(replicas=3, env=[{"name": "FEATURE", "value": "on"}])
    world.step()
    assert world.status["reason"] != "UpgradeQueued"
    world.change(image=V2)
    world.step()
    assert world.status["reason"] == "Migrating"


def test_without_a_new_rendering_nothing_is_queued() -> None:
    world = available_world(replicas=2)
    world.upgrade_slot = False
    plan = world.step()
    assert plan.actions == ()
    assert world.status["reason"] == "RolloutComplete"


def _status(target: str, *, good: str = "", failed: str = "") -> dict[str, str]:
    return {"targetRelease": target, "lastGoodRelease": good, "failedRelease": failed}


def test_the_wave_bounds_and_frees_its_slots() -> None:
    wave = UpgradeWave(size=2)
    for uid in ("a", "b"):
        assert wave.may_start(uid)
        wave.observe(uid, uid, "started", _status("r2"), 0.0)
    assert not wave.may_start("c")
    assert wave.may_start("a")  # a holder keeps its slot
    wave.observe("a", "a", None, _status("r2", good="r2"), 1.0)
    assert wave.may_start("c")
    wave.observe("b", "b", None, _status("r3"), 1.0)  # superseded by a person's change
    assert wave.rolling == {}


def test_a_rollback_halts_the_wave() -> None:
    wave = UpgradeWave(size=5)
    wave.observe("a", "shop", "started", _status("r2"), 0.0)
    wave.observe("b", "cart", "started", _status("r2"), 0.0)
    wave.observe("a", "shop", None, {**_status("r2", failed="r2"), "message": "crash"}, 1.0)
    assert not wave.may_start("c")
    assert wave.may_start("b")  # those already rolling finish
    assert "shop" in wave.describe()


events = st.lists(
    st.tuples(
        st.sampled_from("abcdef"),
        st.sampled_from(("started", None)),
        st.sampled_from(("done", "failed", "superseded", "rolling")),
    ),
    max_size=60,
)


@given(size=st.integers(1, 4), steps=events)
def test_never_more_than_size_roll_and_nothing_starts_after_a_rollback(
    size: int, steps: list[tuple[str, str | None, str]]
) -> None:
    wave = UpgradeWave(size=size)
    halted = False
    for uid, upgrade, outcome in steps:
        if upgrade == "started" and not wave.may_start(uid):
            continue  # decide() queues it instead
        if upgrade == "started" and uid not in wave.rolling:
            assert not halted, "a rollout started after the wave halted"
        status = {
            "done": _status("r2", good="r2"),
            "failed": _status("r2", failed="r2"),
            "superseded": _status("r9"),
            "rolling": _status("r2"),
        }[outcome]
        wave.observe(uid, uid, upgrade, status if upgrade is None else _status("r2"), 0.0)
        halted = halted or wave.halted_by is not None
        assert len(wave.rolling) <= size


def test_a_restarted_operator_counts_the_rollouts_under_way() -> None:
    wave = UpgradeWave(size=1)
    rolling = {"history": [{"release": "r2", "trigger": "operator", "outcome": "RollingOut"}]}
    wave.note("a", rolling, 0.0)
    assert not wave.may_start("b")
    wave.note("c", {"history": [{"release": "r2", "outcome": "RollingOut"}]}, 0.0)
    assert "c" not in wave.rolling  # a person's rollout is not counted


def test_a_stuck_rollout_frees_its_slot_after_a_while() -> None:
    wave = UpgradeWave(size=1)
    wave.observe("a", "shop", "started", _status("r2"), 0.0)
    wave.observe("a", "shop", None, _status("r2"), 100.0)
    assert not wave.may_start("b")
    wave.observe("a", "shop", None, _status("r2"), 100.0 + SLOT_TIMEOUT)
    assert wave.may_start("b")
    assert wave.halted_by is None


def test_a_stuck_slot_is_freed_for_another_without_its_holder_s_pass() -> None:
    """A paused ItemService holding a slot may not run a pass for a resync (600 s): whoever
    asks next frees a slot held past SLOT_TIMEOUT."""
    wave = UpgradeWave(size=1)
    wave.observe("a", "shop", "started", _status("r2"), 0.0)
    assert not wave.may_start("b", SLOT_TIMEOUT - 1)
    assert wave.may_start("b", SLOT_TIMEOUT + 1)
    assert "a" not in wave.rolling


def test_a_scale_or_pause_since_the_last_rollout_still_queues_an_operator_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Those edits move the generation but not the release: the next operator upgrade is
    still recognised as one (history entries record the spec's template inputs)."""
    world = available_world(replicas=2)
    world.change(replicas=3)
    world.settle()
    world.change(paused=True)
    world.step()
    world.change(paused=False)
    world.settle()
    delay = deployment.SHUTDOWN_DELAY_SECONDS + 1
    monkeypatch.setattr(deployment, "SHUTDOWN_DELAY_SECONDS", delay)
    world.upgrade_slot = False
    world.step()
    assert world.status["reason"] == "UpgradeQueued", world.status["message"]
