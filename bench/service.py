"""Service benchmark: the service against a bare ASGI ceiling and the seed-style app, one run.

    uv run python -m bench.service [--duration 10] [--baseline HEAD] [--variant 'name:VAR=1']

Starts a private MariaDB (tests/mariadb.py), migrates and seeds it, then for each target starts
a real Gunicorn with 2 Uvicorn workers on 127.0.0.1 and drives it with wrk (-t1 -c32, fixed
duration) for GET by id, the list, POST and PATCH. Per run it also reads, from /proc, how the
32 connections split over the workers and how much CPU each worker and MariaDB used, counts
the connections MariaDB accepted (pool churn), and after the load the RSS of each worker.
Identical runs differ by 10-50% on this kind of machine: compare targets of the same run only.
The table goes to stdout and to bench/results/service-<date>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.mariadb import MariaDB, cleanup_private_server, free_port, start_private_server

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "lua"
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
WORKERS = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    script: str


ENDPOINTS = (
    Endpoint("get", "GET /items/{id}", "get.lua"),
    Endpoint("list", "GET /items/?limit=20", "list.lua"),
    Endpoint("post", "POST /items/", "post.lua"),
    Endpoint("patch", "PATCH /items/{id}", "patch.lua"),
    # Not in the default set: a new connection per request, to see the cost of accepting.
    Endpoint("getclose", "GET /items/{id}, Connection: close", "get_close.lua"),
)


@dataclass
class Target:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT


@dataclass
class Result:
    target: str
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: str
    conns: list[int]
    cpu: list[float]
    db_cpu: float
    db_connects: int
    splits: list[str] = field(default_factory=list)  # conns/worker of every round


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    workers: list[int]
    log: Path


# /proc readers -----------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def worker_pids(root: int) -> list[int]:
    """Leaf processes under ``root``: the Gunicorn workers (uv and the master have children)."""
    tree = _children()
    leaves: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        kids = tree.get(pid, [])
        if not kids and pid != root:
            leaves.append(pid)
        stack.extend(kids)
    return sorted(leaves)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def established_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    return inodes


def connections_per_worker(port: int, workers: list[int]) -> list[int]:
    """Established client connections held by each worker, from its socket descriptors."""
    inodes = established_inodes(port)
    counts: list[int] = []
    for pid in workers:
        held = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        held += 1
        counts.append(held)
    return counts


# wrk ---------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> tuple[float, float, float, str]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    # "non-2xx answers / socket errors (wrk's 2 s timeout included)"
    bad_status = sockets = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        bad_status = int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), "
        r"timeout (\d+)",
        output,
    ):
        sockets = sum(int(n) for n in match.groups())
    return rps, p50, p99, f"{bad_status}/{sockets}"


def wrk(port: int, script: str, *, duration: int, connections: int, rows: int) -> str:
    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(LUA / script),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
        env={**os.environ, "BENCH_ROWS": str(rows)},
    )
    return completed.stdout


# database ----------------------------------------------------------------------------------


def db_connections(server: MariaDB) -> int:
    with server.admin_connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        row = cur.fetchone()
        assert row is not None
        return int(row[1])


def seed_rows(server: MariaDB, database: str, rows: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with server.admin_connect(database) as conn, conn.cursor() as cur:
        for start in range(1, rows + 1, 1000):
            batch = [
                (
                    i,
                    f"item {i}",
                    "seeded for the benchmark",
                    f"{i % 997}.99",
                    i % 3 != 0,
                    f"SKU-{i:07d}",
                    now,
                    now,
                    1,
                )
                for i in range(start, min(start + 1000, rows + 1))
            ]
            cur.executemany(
                "INSERT INTO items (id, name, description, price, in_stock, sku, created_at,"
                " updated_at, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                batch,
            )


# targets -----------------------------------------------------------------------------------


def start(target: Target, logdir: Path) -> Running:
    port = free_port()
    log = logdir / f"{target.key}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*target.argv, "--port", str(port), "--workers", str(WORKERS)],
            cwd=target.cwd,
            env={**os.environ, **target.env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{target.label} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/1", timeout=2) as r:
                ready = r.status == 200
        except (urllib.error.URLError, OSError):
            ready = False
        workers = worker_pids(process.pid)
        if ready and len(workers) == WORKERS:
            return Running(process, port, workers, log)
        time.sleep(0.2)
    stop(Running(process, port, [], log))
    raise RuntimeError(f"{target.label} did not get ready:\n{log.read_text()[-3000:]}")


def stop(running: Running) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(running.process.pid, signal.SIGTERM)
    try:
        running.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGKILL)
        running.process.wait(timeout=10)


def measure(
    target: Target, running: Running, endpoint: Endpoint, server: MariaDB, args: argparse.Namespace
) -> Result:
    assert server.process is not None
    db_pid = server.process.pid
    connects = db_connections(server)
    cpu_before = [cpu_seconds(pid) for pid in running.workers]
    db_before = cpu_seconds(db_pid)
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        load = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--latency",
                "-s",
                str(LUA / endpoint.script),
                f"http://127.0.0.1:{running.port}/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BENCH_ROWS": str(args.rows)},
        )
        time.sleep(args.duration / 2)
        conns = connections_per_worker(running.port, running.workers)
        load.wait(timeout=args.duration + 30)
        out.seek(0)
        output = out.read()
    elapsed = time.monotonic() - started
    if load.returncode != 0:
        raise RuntimeError(f"wrk failed on {target.label}: {output}")
    rps, p50, p99, errors = parse_wrk(output)
    cpu = [
        (cpu_seconds(pid) - before) / elapsed * 100
        for pid, before in zip(running.workers, cpu_before, strict=True)
    ]
    return Result(
        target.key,
        endpoint.key,
        rps,
        p50,
        p99,
        errors,
        conns,
        cpu,
        (cpu_seconds(db_pid) - db_before) / elapsed * 100,
        db_connections(server) - connects - 1,
    )  # less our own admin connection


# report ------------------------------------------------------------------------------------


def render(
    targets: list[Target],
    results: list[Result],
    rss: dict[str, list[float]],
    args: argparse.Namespace,
    ours: str,
) -> str:
    by = {(r.target, r.endpoint): r for r in results}
    lines = [
        f"Service benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} "
        f"cores, Gunicorn + {WORKERS} Uvicorn workers, wrk -t1 -c{args.connections} "
        f"-d{args.duration}s, MariaDB on loopback, {args.rows} seeded rows, "
        f"niceness {args.nice}, median of {args.rounds} interleaved round(s).",
        "",
        "| endpoint | target | req/s | p50 ms | p99 ms | x seed | non-2xx/sock err | conns/worker "
        "(each round) "
        "| CPU%/worker | DB CPU% | DB connects |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for endpoint in ENDPOINTS:
        seed = by.get(("seed", endpoint.key))
        for target in targets:
            r = by.get((target.key, endpoint.key))
            if r is None:
                continue
            ratio = f"{r.rps / seed.rps:.1f}" if seed and seed.rps else "-"
            lines.append(
                f"| {endpoint.label} | {target.label} | {r.rps:,.0f} | {r.p50_ms:.1f} "
                f"| {r.p99_ms:.1f} | {ratio} | {r.errors} | {', '.join(r.splits)} "
                f"| {'/'.join(f'{c:.0f}' for c in r.cpu)} | {r.db_cpu:.0f} | {r.db_connects} |"
            )
    lines += [
        "",
        "RSS per worker after the load (MiB, from /proc/PID/status VmRSS):",
        "",
        "| target | " + " | ".join(f"worker {i + 1}" for i in range(WORKERS)) + " |",
        "| --- |" + " ---: |" * WORKERS,
    ]
    for target in targets:
        if target.key in rss:
            lines.append(
                f"| {target.label} | " + " | ".join(f"{v:.0f}" for v in rss[target.key]) + " |"
            )
    get_ours, get_seed = by.get((ours, "get")), by.get(("seed", "get"))
    if get_ours and get_seed:
        worst_rss = max(rss.get(ours, [0.0]))
        lines += [
            "",
            f"Aims ({ours}): GET by id >= 6x seed: {get_ours.rps / get_seed.rps:.1f}x; "
            f"GET p99 < 30 ms: {get_ours.p99_ms:.1f} ms; RSS per worker < 120 MiB: "
            f"{worst_rss:.0f} MiB.",
        ]
    return "\n".join(lines) + "\n"


def run_all(
    targets: list[Target],
    endpoints: list[Endpoint],
    server: MariaDB,
    logdir: Path,
    args: argparse.Namespace,
) -> tuple[list[Result], dict[str, list[float]], dict[str, list[list[int]]]]:
    """All targets up at once (idle ones cost nothing), measured interleaved: endpoint by
    endpoint, round by round, target by target, so a change in the machine's background load
    falls on every target alike. With several rounds, the median by req/s is kept."""
    running: dict[str, Running] = {}
    samples: dict[tuple[str, str], list[Result]] = {}
    splits: dict[str, list[list[int]]] = {}
    try:
        for target in targets:
            print(f"{target.label}: starting", file=sys.stderr)
            running[target.key] = start(target, logdir)
            wrk(
                running[target.key].port,
                "get.lua",
                duration=2,
                connections=args.connections,
                rows=args.rows,
            )  # warm the pools and caches
        for endpoint in endpoints:
            for _ in range(args.rounds):
                for target in targets:
                    result = measure(target, running[target.key], endpoint, server, args)
                    samples.setdefault((target.key, endpoint.key), []).append(result)
                    print(
                        f"  {endpoint.label} | {target.label}: {result.rps:,.0f} req/s, "
                        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, conns "
                        f"{result.conns}, errors {result.errors}",
                        file=sys.stderr,
                    )
        rss = {key: [rss_mib(pid) for pid in r.workers] for key, r in running.items()}
        for _ in range(args.split_trials):
            for target in targets:
                splits.setdefault(target.key, []).append(burst_split(running[target.key], args))
    finally:
        for r in running.values():
            stop(r)
    results = []
    for runs in samples.values():
        median = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
        median.splits = ["/".join(map(str, r.conns)) for r in runs]
        results.append(median)
    return results, rss, splits


def burst_split(running: Running, args: argparse.Namespace) -> list[int]:
    """How one fresh burst of wrk's connections lands on the workers (a 1 s GET run)."""
    load = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{args.connections}",
            "-d1s",
            "-s",
            str(LUA / "get.lua"),
            f"http://127.0.0.1:{running.port}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BENCH_ROWS": str(args.rows)},
    )
    time.sleep(0.5)
    conns = connections_per_worker(running.port, running.workers)
    load.wait(timeout=30)
    return conns


# main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def baseline_tree(rev: str | None) -> Iterator[Path | None]:
    """The service package as committed at ``rev``, to run it beside the working tree."""
    if rev is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="items-bench-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "service"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def build_targets(args: argparse.Namespace, url: str, baseline: Path | None) -> list[Target]:
    serve = [str(VENV_BIN / "items-service"), "serve"]
    bench = [sys.executable, "-m", "bench.serve"]
    service_env = {"DATABASE_URL": url}
    targets = [
        Target("bare", "bare ASGI (ceiling)", [*bench, "bare"]),
        Target(
            "seed",
            "seed-style (SQLModel, sync)",
            [*bench, "seed"],
            {"BENCH_SEED_DATABASE_URL": url},
        ),
    ]
    if baseline is not None:
        targets.append(
            Target(
                "base",
                f"ours @ {args.baseline} (before)",
                [sys.executable, "-m", "service.cli", "serve"],
                service_env,
                cwd=baseline,
            )
        )
    targets.append(Target("ours", "ours (asyncmy)", serve, service_env))
    if shutil.which("uv") and not args.no_aiomysql:
        targets.append(
            Target(
                "aiomysql",
                "ours (aiomysql)",
                ["uv", "run", "--no-sync", "--with", "aiomysql", "items-service", "serve"],
                {**service_env, "ITEMS_DB_ASYNC_DRIVER": "aiomysql"},
            )
        )
    for spec in args.tree:
        name, _, folder = spec.partition("=")
        targets.append(
            Target(
                name,
                f"ours ({name})",
                [sys.executable, "-m", "service.cli", "serve"],
                service_env,
                cwd=Path(folder).resolve(),
            )
        )
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        env = dict(item.split("=", 1) for item in assignments.split())
        targets.append(Target(name, f"ours ({name})", serve, {**service_env, **env}))
    if args.only:
        targets = [t for t in targets if t.key in args.only.split(",")]
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--rows", type=int, default=10_000, help="seeded rows (10000)")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the service as committed at REV (e.g. HEAD): before/after",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=V ...",
        help="also run the service with these environment variables",
    )
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run the service package found in DIR (a patched copy)",
    )
    parser.add_argument(
        "--only", help="comma-separated target keys (bare,seed,base,ours,aiomysql,<variant>)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs per target and endpoint; the median is reported (1)",
    )
    parser.add_argument("--endpoints", default="get,list,post,patch")
    parser.add_argument(
        "--split-trials",
        type=int,
        default=10,
        metavar="N",
        help="fresh connection bursts per target to measure the split (10)",
    )
    parser.add_argument("--no-aiomysql", action="store_true")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="run everything at this niceness, e.g. -10 (root) on a busy box",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--output", type=Path, help="markdown file (default bench/results/...)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    if args.nice:
        # Inherited by everything started below (MariaDB, the servers, wrk): on a shared
        # machine the background load then takes much less of the measurement's CPU.
        os.nice(args.nice)
    endpoints = [e for e in ENDPOINTS if e.key in args.endpoints.split(",")]
    load_before = Path("/proc/loadavg").read_text().split()[0]
    logdir = Path(tempfile.mkdtemp(prefix="items-bench-logs-"))
    print("starting MariaDB ...", file=sys.stderr)
    server = start_private_server()
    try:
        url = server.create_database("items_bench")
        subprocess.run(
            [str(VENV_BIN / "items-service"), "migrate"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
        )
        seed_rows(server, "items_bench", args.rows)
        with baseline_tree(args.baseline) as baseline:
            targets = build_targets(args, url, baseline)
            results, rss, splits = run_all(targets, endpoints, server, logdir, args)
    finally:
        cleanup_private_server(server)
        if args.keep_logs:
            print(f"server logs kept in {logdir}", file=sys.stderr)
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    load_after = Path("/proc/loadavg").read_text().split()[0]
    table = render(targets, results, rss, args, "ours")
    if splits:
        table += (
            f"\nConnections per worker, {args.split_trials} fresh bursts of "
            f"{args.connections} (1 s GET runs), busiest worker's share:\n\n"
            "| target | splits | busiest share, median / worst |\n| --- | --- | --- |\n"
        )
        for target in targets:
            runs = splits.get(target.key, [])
            shares = sorted(max(r) / max(1, sum(r)) for r in runs)
            if shares:
                table += (
                    f"| {target.label} | {' '.join('/'.join(map(str, r)) for r in runs)} "
                    f"| {shares[len(shares) // 2]:.0%} / {shares[-1]:.0%} |\n"
                )
    table += (
        f"\nLoad average (1 min) before/after the run: {load_before}/{load_after} "
        f"on {os.cpu_count()} cores.\n"
    )
    print(table)
    output = args.output or RESULTS / f"service-{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
    print(f"written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
