"""Helpers of the cluster tests that run the operator in this process (Kopf's KopfRunner):
its own Prometheus counters tell what it did."""

from __future__ import annotations

import time
from typing import Any

from tests.cluster.kube_support import wait_until


def counter_total(counter: Any) -> float:
    """Sum of a prometheus_client Counter over all its label sets."""
    return float(
        sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))
    )


def wait_settled(metrics: Any) -> None:
    """No pass for a while: the status write's own event has woken its last pass."""
    last = [counter_total(metrics.RECONCILES), time.monotonic()]

    def quiet() -> bool:
        now = counter_total(metrics.RECONCILES)
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return time.monotonic() - last[1] > 3

    wait_until("the passes to settle", quiet, 60)
