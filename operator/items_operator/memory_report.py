"""Where the operator's memory goes, for a person diagnosing it (docs/operations.md).

The heap report needs Python's own switch: start the operator with PYTHONTRACEMALLOC=<frames>
(tracemalloc then traces every allocation from the first import, at a cost in memory and CPU
that is for a diagnosis, not for production). `kill -USR1 <pid>` then writes the live heap's
largest allocation sites, by file and by line, to stderr: what a fleet's per-ItemService cost
is made of (docs/benchmarks.md, "Operator cost"); without tracing it says tracing is off.
`kill -USR2 <pid>` trims the heap (trim) and logs the RSS before and after: what it gives back
was free memory the allocator held, not live objects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import signal
import sys
import tracemalloc
from types import FrameType
from typing import TextIO

TOP_FILES = 80
TOP_LINES = 100


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


def trim() -> bool:
    """A full collection, then glibc's malloc_trim(0): hands the free pages inside the heap
    back to the kernel (free() returns only the heap's top). False where there is no glibc."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))


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
