"""When passes run, with --cache-reads on (a pass then costs CPU, not API requests):

- the idle poll becomes a jittered resync (minutes): the watches wake a pass on every change,
  deadlines the decision layer names shorten the sleep (Plan.wake_after), and the resync is
  the level-triggered safety net; passes of 1,000 ItemServices never line up on one second;
- in motion, a situation whose inputs all come through watches (Plan.watched: a migration
  running, pods pulling, scheduling or starting) sleeps until its deadline or an event, with a
  short jittered safety net instead of the 2 s / 5 s / 15 s polls; a pass that read what no
  watch reports (/readyz of unready pods, /metrics, a foreign object in the way, the upgrade
  wave) polls at its row's interval, idle or not;
- at most `limit` passes run at once (PassLimiter), those of ItemServices in motion first;
- the first passes after a start are spread (StartupPacer), so a restart over 1,000
  ItemServices does not compute them all in one burst while the liveness probe waits; those
  in motion (not Available or ScaledToZero) are not held back.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from items_operator.plan import Plan
from items_operator.policy import IDLE_POLL

DEFAULT_RESYNC_SECONDS = 600.0
RESYNC_JITTER = 0.2  # +-20 %
# In motion with every input watched: a lost event costs at most this (+-20 %), never a stuck
# rollout; a watch that falls silent is re-opened within --watch-timeout anyway.
MOTION_RESYNC_SECONDS = 30.0
DEFAULT_CONCURRENCY = 8
DEFAULT_STARTUP_RATE = 100.0  # first passes per second


def next_sleep(plan: Plan, resync: float, rng: random.Random) -> float:
    """Seconds until the pass after `plan`, unless an event wakes it: a pass that read what no
    watch reports polls at its row's interval (idle too); a watched one sleeps until its
    deadline or the jittered resync (idle) or motion safety net. A named deadline is never
    slept past."""
    if not plan.watched:  # it read what no watch reports: look again at the row's interval
        return plan.requeue_after
    deadline = plan.wake_after if plan.wake_after is not None else float("inf")
    if plan.requeue_after >= IDLE_POLL:
        return min(_jittered(resync, rng), deadline)
    return min(_jittered(MOTION_RESYNC_SECONDS, rng), deadline)


def _jittered(seconds: float, rng: random.Random) -> float:
    return seconds * rng.uniform(1 - RESYNC_JITTER, 1 + RESYNC_JITTER)


class PassLimiter:
    """A semaphore whose waiters are served urgent first, then in arrival order."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = 0

    @asynccontextmanager
    async def slot(self, *, urgent: bool) -> AsyncIterator[None]:
        if self.free > 0 and not self._waiting:
            self.free -= 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._arrivals += 1
            heapq.heappush(self._waiting, (0 if urgent else 1, self._arrivals, turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._hand_on()  # the slot was ours already: pass it on
                raise
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


class StartupPacer:
    """Hands out start times `1/rate` apart (with jitter inside each slot): a lone ItemService
    starts at once, a thousand over 10 s at 100 per second."""

    def __init__(self, rate: float, rng: random.Random | None = None) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.rng = rng or random.Random()
        self._next = 0.0

    def delay(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        start = max(now, self._next)
        self._next = start + self.interval
        return start - now + self.rng.uniform(0, self.interval)


@dataclass
class CacheMode:
    """--cache-reads on: reads from the indexes (cache.py), passes paced as above."""

    resync: float
    limiter: PassLimiter
    pacer: StartupPacer
    rng: random.Random = field(default_factory=random.Random)
