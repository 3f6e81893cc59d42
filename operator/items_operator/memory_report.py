"""Where the operator's memory goes, for a person diagnosing it (docs/operations.md).

The heap report needs Python's own switch: start the operator with PYTHONTRACEMALLOC=<frames>
(tracemalloc then traces every allocation from the first import, at a cost in memory and CPU
that is for a diagnosis, not for production). `kill -USR1 <pid>` then writes the live heap's
largest allocation sites, by file and by line, to stderr: what a fleet's per-ItemService cost
is made of (docs/benchmarks.md, "Operator cost"); without tracing it says tracing is off.
`kill -USR2 <pid>` trims the heap (trim) and logs the RSS before and after: what it gives back
was free memory the allocator held, not live objects. And the operator trims by itself every
--trim-seconds (trim_periodically).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import signal
import sys
import time
import tracemalloc
from collections.abc import Callable
from types import FrameType
from typing import TextIO

from items_operator import metrics

TOP_FILES = 80
TOP_LINES = 100
TRIM_SECONDS = 60.0  # --trim-seconds


def install() -> None:
    """The SIGUSR1 report (Kopf's loop takes SIGTERM and SIGINT only). Installed whether or not
    tracemalloc traces: the signal's default action would end the operator."""
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGUSR2, _on_trim_signal)


def _on_trim_signal(_signum: int, _frame: FrameType | None) -> None:
    before = rss_kib()
    trimmed = trim()
    sys.stderr.write(f"memory-report: trim {trimmed}; RSS {before} -> {rss_kib()} KiB\n")
    sys.stderr.flush()


def rss_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1])


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim_function: Callable[[int], int] | None = getattr(ctypes.CDLL(name), "malloc_trim", None)
    return trim_function


def trim() -> bool:
    """A full collection, then glibc's malloc_trim(0): hands the free pages inside the heap
    back to the kernel (free() returns only the heap's top). False where there is no glibc."""
    gc.collect()
    malloc_trim = _malloc_trim()
    return malloc_trim is not None and bool(malloc_trim(0))


async def trim_periodically(interval: float) -> None:
    """malloc_trim(0) every `interval` seconds, for as long as the operator runs.

    Why: what the process frees during a fleet's rollouts (decoded list pages and watch
    events, request and response bodies) goes back to glibc, which keeps it inside the heap
    wherever a live allocation sits above it: with 1,000 ItemServices just applied, 51 MiB
    of a 146 MiB RSS (docs/benchmarks.md), enough to cross a memory limit that the live data
    is far from. No collection first (a full one over a fleet's objects is the costlier
    part); the time each trim holds the loop is items_operator_heap_trim_seconds."""
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return
    while True:
        await asyncio.sleep(interval)
        before, started = rss_kib(), time.perf_counter()
        malloc_trim(0)
        metrics.HEAP_TRIM_SECONDS.observe(time.perf_counter() - started)
        metrics.HEAP_TRIMMED.inc(max(before - rss_kib(), 0) * 1024)


def _on_signal(_signum: int, _frame: FrameType | None) -> None:
    report(sys.stderr)


def report(out: TextIO) -> None:
    """The live heap's top allocation sites (sizes in KiB), by file then by line."""
    if not tracemalloc.is_tracing():
        out.write("memory-report: tracing is off; start the operator with PYTHONTRACEMALLOC=1\n")
        out.flush()
        return
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__),)
    )
    traced, peak = tracemalloc.get_traced_memory()
    out.write(f"memory-report: traced {traced / 1024:.0f} KiB (peak {peak / 1024:.0f} KiB)\n")
    for key, limit in (("filename", TOP_FILES), ("lineno", TOP_LINES)):
        for stat in snapshot.statistics(key)[:limit]:
            frame = stat.traceback[0]
            where = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
            out.write(f"memory-report {key}: {stat.size / 1024:9.1f} KiB {stat.count:8d} {where}\n")
    out.flush()
