"""The operator's heap report (memory_report.py): a SIGUSR1 never ends the process, and with
tracing on it names the largest allocation sites."""

from __future__ import annotations

import io
import os
import signal
import tracemalloc

import pytest
from items_operator import memory_report


def test_the_report_names_allocation_sites_while_tracing() -> None:
    tracemalloc.start()
    try:
        kept = [bytearray(64 * 1024) for _ in range(8)]  # 512 KiB on this line
        out = io.StringIO()
        memory_report.report(out)
    finally:
        tracemalloc.stop()
    text = out.getvalue()
    assert text.startswith("memory-report: traced ")
    assert "memory-report filename:" in text
    assert any("test_memory_report.py" in line for line in text.splitlines()[1:4]), text
    assert len(kept) == 8


def test_without_tracing_the_signal_says_so_and_the_process_lives(
    capfd: pytest.CaptureFixture[str],
) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        memory_report.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert "tracing is off" in capfd.readouterr().err
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_the_trim_signal_logs_the_rss_before_and_after(capfd: pytest.CaptureFixture[str]) -> None:
    previous = signal.getsignal(signal.SIGUSR2)
    try:
        memory_report.install()
        os.kill(os.getpid(), signal.SIGUSR2)
        err = capfd.readouterr().err
        assert "memory-report: trim True; RSS " in err  # glibc here: it trims
        assert memory_report.rss_kib() > 0
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_the_periodic_trim_hands_freed_heap_back_and_says_how_long_it_held_the_loop() -> None:
    """Memory freed below a live allocation stays resident until malloc_trim: the periodic
    trim returns it (this process's own heap, glibc's allocator)."""
    import asyncio

    from items_operator import metrics

    def observations() -> float:
        samples = [s for m in metrics.HEAP_TRIM_SECONDS.collect() for s in m.samples]
        return float(next(s.value for s in samples if s.name.endswith("_count")))

    async def scenario() -> tuple[int, int]:
        # 40 MiB in 4 KiB blocks (below glibc's mmap threshold: inside the heap), then live
        # 1 KiB blocks above them (over pymalloc's 512 bytes: glibc's heap too), then the 4 KiB
        # ones freed: one free region under live blocks, which free() cannot give back.
        blocks = [bytearray(4096) for _ in range(10_000)]
        kept = [bytearray(1024) for _ in range(10_000)]
        del blocks
        held = memory_report.rss_kib()
        before = observations()
        task = asyncio.create_task(memory_report.trim_periodically(0.01))
        async with asyncio.timeout(10):  # two trims at most 10 s after the start
            for _ in iter(lambda: observations() >= before + 2, True):
                await asyncio.sleep(0.01)
        task.cancel()
        assert len(kept) == 10_000
        return held, memory_report.rss_kib()

    held, after = asyncio.run(scenario())
    assert after < held - 10 * 1024, (held, after)  # most of the 40 MiB is back
