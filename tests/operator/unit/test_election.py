"""The election's state machine (election.py): its transitions on a fake clock, the fencing
invariant over random interleavings (lease_world.py), and CLOCK_MONOTONIC across a SIGSTOP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from items_operator.election import Election, LeaseRecord, Step, Timings
from items_operator.main import lease_config, parse_args

from tests.operator.unit.lease_world import DRIFT, LOST, overlaps, replica, simulate

TIMINGS = Timings()  # 15 s lease, 10 s renew deadline, 2 s retry


def _record(holder: str, version: str, duration: float | None = None) -> LeaseRecord:
    return LeaseRecord(holder, version, renew_time=version, duration_seconds=duration)


def test_defaults_are_client_go_s_and_the_deadline_must_be_shorter_than_the_lease() -> None:
    assert (TIMINGS.lease_duration, TIMINGS.renew_deadline, TIMINGS.retry_period) == (15, 10, 2)
    for lease, deadline, retry in ((10, 10, 2), (10, 12, 2), (15, 10, 10), (15, 10, 0)):
        with pytest.raises(ValueError, match="renew deadline < lease duration"):
            Timings(lease, deadline, retry)


def test_the_cli_refuses_a_renew_deadline_not_below_the_lease(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--lease-namespace", "ops", "--lease-duration", "5", "--renew-deadline", "5"])
    assert "renew deadline < lease duration" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="POD_NAMESPACE"):
        lease_config(parse_args(["--lease-namespace", ""]))
    assert lease_config(parse_args(["--standalone", "--lease-namespace", ""])) is None


def test_a_lease_missing_for_a_lease_duration_is_created_and_leads_until_the_deadline() -> None:
    election = Election("a", TIMINGS)
    assert election.next_step(0.0) is Step.READ
    election.observed(None, 0.1)
    election.observed(None, 10.0)  # still missing: counted from the first time
    assert election.next_step(15.0) is Step.READ  # deleted under a live leader, perhaps
    assert election.next_step(15.1) is Step.CREATE
    election.succeeded(_record("a", "1"), request_started=15.2)
    assert election.may_write(15.2 + 9.99)
    assert not election.may_write(15.2 + 10.0)  # from the request's start, not its answer
    assert election.next_step(16.0) is Step.RENEW


def test_a_leader_whose_lease_was_deleted_stops_and_waits_like_everyone() -> None:
    election = Election("a", TIMINGS)
    election.succeeded(_record("a", "1"), 0.0)
    election.observed(None, 2.0)  # its renewal answered 404
    assert not election.may_write(2.0)
    assert election.next_step(16.9) is Step.READ
    assert election.next_step(17.0) is Step.CREATE


def test_a_candidate_waits_a_lease_duration_of_its_own_clock_since_the_last_change() -> None:
    election = Election("b", TIMINGS)
    election.observed(_record("a", "1"), 100.0)
    election.observed(_record("a", "1"), 114.0)  # unchanged: the clock runs from 100
    assert election.next_step(114.9) is Step.READ
    election.observed(_record("a", "2"), 115.0)  # renewed: the clock restarts
    assert election.next_step(129.9) is Step.READ
    assert not election.may_write(129.9)
    assert election.next_step(130.0) is Step.ACQUIRE


def test_a_holder_announcing_a_longer_lease_is_given_it() -> None:
    election = Election("b", TIMINGS)
    election.observed(_record("a", "1", duration=60), 0.0)
    assert election.next_step(59.0) is Step.READ
    assert election.next_step(60.0) is Step.ACQUIRE


def test_seeing_another_holder_or_a_conflict_stops_writing_at_once() -> None:
    election = Election("a", TIMINGS)
    election.succeeded(_record("a", "1"), 0.0)
    election.observed(_record("b", "2"), 1.0)
    assert not election.may_write(1.0)
    assert election.next_step(1.0) is Step.READ
    election.succeeded(_record("a", "3"), 2.0)
    election.conflicted()
    assert not election.may_write(2.0)
    assert election.next_step(2.0) is Step.READ


def test_a_released_lease_is_free_at_once_and_the_releaser_stopped_first() -> None:
    leader, standby = Election("a", TIMINGS), Election("b", TIMINGS)
    leader.succeeded(_record("a", "1"), 0.0)
    standby.observed(_record("a", "1"), 0.5)
    leader.resign()
    assert not leader.may_write(1.0)
    standby.observed(_record("", "2"), 1.0)  # what the releaser wrote
    assert standby.next_step(1.0) is Step.ACQUIRE


def test_a_failed_renewal_keeps_the_fence_only_until_its_deadline() -> None:
    election = Election("a", TIMINGS)
    election.succeeded(_record("a", "1"), 0.0)
    for now in (2.0, 4.0, 6.0, 8.0):
        election.failed()
        assert election.may_write(now)
        assert election.next_step(now) is Step.RENEW
    assert not election.may_write(10.0)


@given(
    renewed_at=st.floats(0, 1e6),
    frozen_for=st.floats(TIMINGS.renew_deadline, 1e4),
)
def test_a_leader_thawed_after_the_renew_deadline_may_not_write(
    renewed_at: float, frozen_for: float
) -> None:
    election = Election("a", TIMINGS)
    election.succeeded(_record("a", "7"), renewed_at)
    assert not election.may_write(renewed_at + frozen_for)
    # What it tries first is a renewal of the record it knew: guarded by its resourceVersion.
    assert election.next_step(renewed_at + frozen_for) is Step.RENEW


_delay = st.floats(0.0, 1.0)
_freeze = st.tuples(st.floats(0, 150), st.floats(1, 40))


def _disjoint(freezes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    spans, last_end = [], 0.0
    for start, length in sorted(freezes):
        start = max(start, last_end)
        spans.append((start, start + length))
        last_end = start + length
    return spans


# Any timings whose margin covers the clock drift: with rates within ±DRIFT, a leader's
# renew deadline on a slow clock must end before a lease duration on a fast one.
_timings = st.builds(
    lambda retry, deadline, extra: Timings(
        (retry + deadline) * (1 + DRIFT) / (1 - DRIFT) + extra, retry + deadline, retry
    ),
    st.floats(0.2, 3.0),
    st.floats(0.1, 10.0),
    st.floats(0.0, 5.0),
)


@settings(max_examples=200, deadline=None)
@given(
    timings=st.one_of(st.just(TIMINGS), _timings),
    clocks=st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.floats(1 - DRIFT, 1 + DRIFT)), min_size=2, max_size=3
    ),
    freezes=st.lists(st.lists(_freeze, min_size=1, max_size=3), min_size=3, max_size=3),
    data=st.data(),
)
def test_never_two_replicas_may_write_at_once(
    timings: Timings,
    clocks: list[tuple[float, float]],
    freezes: list[list[tuple[float, float]]],
    data: st.DataObject,
) -> None:
    """Any offsets, rates within 5 %, request delays up to 1 s each way, lost answers, and
    freezes up to 40 s: the replicas' writable intervals (real time) never overlap, and a
    replica thawed after more than the renew deadline (its clock) finds its fence closed."""
    replicas = [
        replica(f"r{i}", timings, offset, rate, _disjoint(freezes[i]))
        for i, (offset, rate) in enumerate(clocks)
    ]

    def delays() -> tuple[float, float]:
        lost = data.draw(st.integers(0, 9)) == 0  # one answer in ten never arrives
        return data.draw(_delay), LOST if lost else data.draw(_delay)

    simulate(replicas, delays, until=200.0)
    for i, a in enumerate(replicas):
        for b in replicas[i + 1 :]:
            assert overlaps(a.writable, b.writable) == []
        for frozen, may_write in a.thawed_writable:
            assert not (frozen >= timings.renew_deadline and may_write)


def test_a_run_without_disturbance_has_one_leader_throughout() -> None:
    replicas = [replica(f"r{i}", TIMINGS, i * 1000.0, 1.0, []) for i in range(2)]
    simulate(replicas, lambda: (0.01, 0.01), until=120.0)
    [leader] = [r for r in replicas if r.writable]
    start, end = leader.writable[0][0], leader.writable[-1][1]
    assert start < TIMINGS.lease_duration + TIMINGS.retry_period + 0.1  # no Lease at first
    assert end > 119.0
    covered = sum(b - a for a, b in leader.writable)
    assert covered == pytest.approx(end - start)


CHILD = textwrap.dedent(
    """
    import sys, time
    from items_operator.election import Election, LeaseRecord, Timings
    election = Election("a", Timings(lease_duration=0.6, renew_deadline=0.4, retry_period=0.1))
    election.succeeded(LeaseRecord("a", "1"), time.monotonic())
    print("leading", election.may_write(time.monotonic()), flush=True)
    sys.stdin.readline()
    print("after thaw", election.may_write(time.monotonic()), flush=True)
    """
)


@pytest.fixture
def leader_process() -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


def test_clock_monotonic_counts_while_a_leader_is_stopped(
    leader_process: subprocess.Popen[str],
) -> None:
    """The reasoning behind the fence, on a real process: SIGSTOP it while it may write, keep
    it stopped past its renew deadline (0.4 s), SIGCONT: its own clock says the fence closed."""
    assert leader_process.stdin is not None
    assert leader_process.stdout is not None
    assert leader_process.stdout.readline().strip() == "leading True"
    leader_process.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    # The stop itself is what is measured: nothing to wait on but the clock.
    time.sleep(0.5)
    assert time.monotonic() - stopped_at >= 0.4
    leader_process.send_signal(signal.SIGCONT)
    leader_process.stdin.write("go\n")
    leader_process.stdin.flush()
    assert leader_process.stdout.readline().strip() == "after thaw False"
