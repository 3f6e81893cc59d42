"""The benchmark's node-CPU account (bench/cluster/node_cpu.py), without a cluster: shares are
of the CPU the node used, pressure is summarized as sampled, failures are placed in their
second, and a real sample reads this machine's own counters."""

from __future__ import annotations

import os

from bench.cluster import node_cpu, report_classes
from bench.cluster.node_cpu import NodeCpu, Sample, summarize


def _samples() -> list[Sample]:
    cores = os.cpu_count() or 1
    # 10 s: the node used half its cores; the pods 60 % of that, the daemons 30 %.
    return [
        Sample(0.0, 100.0, 50.0, 20.0, 40.0),
        Sample(5.0, 100.0 + 2.5 * cores, 50.0 + 1.5 * cores, 20.0 + 0.75 * cores, 95.0),
        Sample(10.0, 100.0 + 5.0 * cores, 50.0 + 3.0 * cores, 20.0 + 1.5 * cores, 91.0),
    ]


def test_summary_shares_are_of_the_busy_cpu() -> None:
    summary = summarize(_samples())
    assert summary == {
        "seconds": 10,
        "busy_percent": 50.0,
        "pods_percent": 60.0,
        "daemons_percent": 30.0,
        "pressure_mean": 75.3,
        "pressure_max": 95.0,
        "seconds_full": 2,
    }


def test_a_missing_cgroup_is_no_share_not_zero() -> None:
    samples = [Sample(s.t, s.busy, s.pods, None, None) for s in _samples()]
    summary = summarize(samples)
    assert summary is not None
    assert summary["daemons_percent"] is None
    assert summary["pressure_mean"] is None
    assert summarize(samples[:1]) is None


def test_failures_take_the_pressure_of_their_second() -> None:
    cpu = NodeCpu()
    cpu.samples.extend(_samples())
    errors = {"client-ours-1": [{"t": 4.2, "status": None, "detail": "TimeoutError"}]}
    placed = node_cpu.failures_in_context(cpu, errors)
    assert placed == [
        {
            "t": 4.2,
            "status": None,
            "detail": "TimeoutError",
            "client": "client-ours-1",
            "pressure": 95.0,
        }
    ]
    table = report_classes.node_cpu_table({"never-ready": summarize(_samples())}, placed)
    assert "| never-ready | 10 | 50 | 60 | 30 | 75 / 95 | 2 |" in table
    assert "median 95 %" in table


def test_a_sample_reads_this_machine() -> None:
    first = node_cpu.sample()
    assert first.busy > 0
    assert first.pressure is None or 0 <= first.pressure <= 100
