"""A simulated API server and replicas running election.Election, in real (simulated) time.

Each replica has its own monotonic clock (any offset, a rate within DRIFT of true time), may be
frozen for stretches (SIGSTOP: its clock keeps counting, it handles nothing), and its requests
take random time to reach the server and to come back, or never come back. The server holds one
Lease record and applies creates and resourceVersion-guarded updates in the order they arrive.
What the simulation records: for each replica, the real-time intervals in which its fence let it
write, and its fence's answer at every thaw.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from items_operator.election import Election, LeaseRecord, Step, Timings

DRIFT = 0.05  # clock rates within 5 % of true time (NTP-less hardware is far better)
LOST = -1.0  # a response delay meaning "never arrives": the replica times out
REQUEST_TIMEOUT = 3.0


@dataclass
class Server:
    record: LeaseRecord | None = None
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def handle(self, step: Step, identity: str, known: LeaseRecord | None) -> str:
        """The API server's answer: "ok", "conflict" or "gone" (404)."""
        if step is Step.READ:
            return "ok"
        if step is Step.CREATE:
            if self.record is not None:
                return "conflict"
        elif self.record is None:
            return "gone"
        elif known is None or known.resource_version != self.record.resource_version:
            return "conflict"
        version = str(next(self.versions))
        self.record = LeaseRecord(identity, version, renew_time=version)
        return "ok"


@dataclass
class Replica:
    election: Election
    offset: float
    rate: float
    freezes: list[tuple[float, float]]  # (start, end) in real time, sorted, disjoint
    writable: list[tuple[float, float]] = field(default_factory=list)
    thawed_writable: list[tuple[float, bool]] = field(default_factory=list)  # (freeze length, ...)

    def local(self, real: float) -> float:
        return self.offset + self.rate * real

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate

    def awake_at(self, real: float) -> float:
        """The first moment from `real` on at which the process runs."""
        for start, end in self.freezes:
            if start <= real < end:
                return end
        return real

    def fence_changed(self, now: float) -> None:
        """Record [now, end of validity) as writable; cut an earlier interval short."""
        if self.writable and self.writable[-1][1] > now:
            self.writable[-1] = (self.writable[-1][0], now)
        until = self.election.valid_until
        if until is not None and self.real(until) > now:
            self.writable.append((now, self.real(until)))


# A request's two delays (to the server, back), drawn by the test; LOST as the second: no answer.
Delays = Callable[[], tuple[float, float]]


def simulate(replicas: list[Replica], delays: Delays, until: float) -> None:
    server = Server()
    queue: list[tuple[float, int, Callable[[float], None]]] = []
    order = itertools.count()

    def at(real: float, action: Callable[[float], None]) -> None:
        heapq.heappush(queue, (real, next(order), action))

    def wake(replica: Replica) -> Callable[[float], None]:
        def run(now: float) -> None:
            awake = replica.awake_at(now)
            if awake > now:
                at(awake, thaw(replica, awake - now))
                return
            election = replica.election
            step = election.next_step(replica.local(now))
            started, known = replica.local(now), election.record
            to_server, back = delays()

            def arrive(t: float) -> None:
                answer = server.handle(step, election.identity, known)
                record = server.record
                if back == LOST:
                    at(now + REQUEST_TIMEOUT, respond(replica, step, "error", None, started))
                else:
                    at(t + back, respond(replica, step, answer, record, started))

            at(now + to_server, arrive)

        return run

    def thaw(replica: Replica, frozen: float) -> Callable[[float], None]:
        def run(now: float) -> None:
            may = replica.election.may_write(replica.local(now))
            replica.thawed_writable.append((frozen * replica.rate, may))
            wake(replica)(now)

        return run

    def respond(
        replica: Replica, step: Step, answer: str, record: LeaseRecord | None, started: float
    ) -> Callable[[float], None]:
        def run(now: float) -> None:
            awake = replica.awake_at(now)
            if awake > now:  # a stopped process reads its socket when it runs again
                at(awake, respond(replica, step, answer, record, started))
                return
            election = replica.election
            if answer == "error":
                election.failed()
            elif answer == "conflict":
                election.conflicted()
            elif step is Step.READ or answer == "gone":
                election.observed(record, replica.local(now))
            else:
                assert record is not None
                election.succeeded(record, started)
            replica.fence_changed(now)
            pause = election.pause_after(answer)
            at(now + pause / replica.rate, wake(replica))

        return run

    for replica in replicas:
        at(0.0, wake(replica))
    while queue:
        now, _, action = heapq.heappop(queue)
        if now > until:
            break
        action(now)


def overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, ...]]:
    return [(*x, *y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]


def replica(
    identity: str, timings: Timings, offset: float, rate: float, freezes: list[tuple[float, float]]
) -> Replica:
    return Replica(Election(identity, timings), offset, rate, freezes)
