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
