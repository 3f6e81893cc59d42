"""The leader election's state machine, pure: what to do next and whether writes are allowed,
from what the Lease looked like and one monotonic clock. leadership.py does the I/O.

Two rules carry the safety argument (docs/operator.md, High availability):

- A candidate takes the Lease only when its record (holder, resourceVersion, renewTime) has not
  changed for `lease_duration` by the candidate's OWN monotonic clock, counted from the moment
  it last saw it change (after the response arrived). renewTime is compared for equality only,
  never with a local wall clock: nodes' clocks are skewed.
- The holder may write only while monotonic() < start of its last successful renew request +
  `renew_deadline`. That request reached the server after it started, the candidate saw its
  result later still, so the candidate's earliest take-over is after start + lease_duration:
  the holder's permission ends `lease_duration - renew_deadline` (5 s by default) before it.

Both acquire and renew are updates carrying the resourceVersion last seen: of two replicas
racing for one record, the API server lets exactly one through (409 for the other).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    """client-go's defaults; renew_deadline < lease_duration is the fencing margin."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} s, {self.renew_deadline} s, {self.lease_duration} s"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says; renew_time is an opaque string here (equality only)."""

    holder: str
    resource_version: str
    renew_time: str | None = None
    duration_seconds: float | None = None
    transitions: int = 0

    @property
    def identity(self) -> tuple[str, str, str | None]:
        return self.holder, self.resource_version, self.renew_time


class Step(enum.Enum):
    READ = "read"  # look at the Lease (follower, or after a conflict)
    CREATE = "create"  # no Lease exists yet
    ACQUIRE = "acquire"  # someone else's record went stale: take it over
    RENEW = "renew"  # ours: extend it


class Election:
    """One replica's view. Call next_step(now), do it, then report with observed(),
    succeeded(), conflicted() or failed(). `now` is always time.monotonic() (or a test's)."""

    def __init__(self, identity: str, timings: Timings) -> None:
        self.identity = identity
        self.timings = timings
        self.record: LeaseRecord | None = None
        self.lease_missing = False
        self.missing_since: float | None = None
        self.changed_at: float | None = None  # when we last saw the record change
        self.valid_until: float | None = None  # the fence: writes allowed before this

    def may_write(self, now: float) -> bool:
        return self.valid_until is not None and now < self.valid_until

    def next_step(self, now: float) -> Step:
        if self.lease_missing:
            # Created only after a lease duration without one: a Lease deleted under a live
            # leader is no invitation (its fence runs until it notices the deletion).
            since = now if self.missing_since is None else self.missing_since
            return Step.CREATE if now - since >= self.timings.lease_duration else Step.READ
        if self.record is None:
            return Step.READ
        if self.record.holder == self.identity:
            return Step.RENEW  # with the resourceVersion we know: a 409 if anyone else wrote
        return Step.ACQUIRE if self.expired(now) else Step.READ

    def expired(self, now: float) -> bool:
        if self.record is None or self.changed_at is None:
            return False
        if self.record.holder == "":
            return True  # released by a leader that had stopped writing (resign)
        # The longer of the holder's announced duration and ours: a holder configured for a
        # longer lease is never cut short by a replica configured for a shorter one.
        duration = max(self.timings.lease_duration, self.record.duration_seconds or 0.0)
        return now - self.changed_at >= duration

    def observed(self, record: LeaseRecord | None, now: float) -> None:
        """A read answered (now: after the response arrived). None: no Lease exists."""
        if record is None:
            if not self.lease_missing:
                self.lease_missing, self.missing_since = True, now
            self.record, self.changed_at = None, None
            self.valid_until = None
            return
        self.lease_missing, self.missing_since = False, None
        if self.record is None or record.identity != self.record.identity:
            self.changed_at = now
        self.record = record
        if record.holder != self.identity:
            self.valid_until = None  # someone else holds it: stop writing at once

    def succeeded(self, record: LeaseRecord, request_started: float) -> None:
        """Our create, acquire or renew was accepted; `request_started` is when it was sent."""
        self.lease_missing, self.missing_since = False, None
        self.record, self.changed_at = record, request_started
        self.valid_until = request_started + self.timings.renew_deadline

    def conflicted(self) -> None:
        """409: someone else wrote the Lease first. Stop writing now; read it again next."""
        self.valid_until = None
        self.record, self.changed_at = None, None
        self.lease_missing, self.missing_since = False, None

    def resign(self) -> None:
        """Stop writing now, before the Lease is released (an empty holder: free at once)."""
        self.valid_until = None

    def failed(self) -> None:
        """No answer or an error: nothing learnt; the fence runs out by itself if it lasts."""

    def pause_after(self, answer: str) -> float:
        """Seconds until the next step, given the last one's answer ("ok", "conflict", "gone",
        "error"): at once after a lost race or when the Lease turned out released, else a
        retry period (a leader renews, a follower reads, an error is retried so)."""
        if answer == "conflict":
            return 0.0
        if answer == "ok" and self.record is not None and self.record.holder == "":
            return 0.0
        return self.timings.retry_period
