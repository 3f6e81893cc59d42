"""Migration benchmark: revision 0002 on a large items table under load, online against naive.

    uv run python -m bench.migration [--rows 1048576] [--rate 200] [--settle 4]

Starts a private MariaDB (tests/mariadb.py), migrates it to 0001, seeds the items table by
INSERT ... SELECT doubling (20 doublings: 1,048,576 rows in seconds), starts the service
(Gunicorn, 2 Uvicorn workers, 127.0.0.1) and drives it at a fixed rate, 4 GET /items/{id} to 1
PATCH /items/{id}, latency counted from each request's scheduled start (so a stall shows as the
queue it causes, not as fewer requests).

The only image here already reads `sku` (no release before 0002 exists), so 0002's first
statement, ADD COLUMN (ALGORITHM=INSTANT: metadata only, milliseconds), runs before the load
starts: the schema is then exactly what a 0002 killed after its first statement leaves. What is
measured is the rest of 0002, the unique index over every row. For each variant: settle, build
the index, settle, drop the index again for the next variant. Variants:

- online: the statement `items-service migrate` runs here (taken from its offline SQL: the
  ALTER with ALGORITHM=INPLACE, LOCK=NONE; it skips the column that is there);
- plain: the same ALTER with no ALGORITHM/LOCK (the server picks);
- shared: the same ALTER with LOCK=SHARED (reads go on, writes wait);
- copy: the same ALTER with ALGORITHM=COPY, what a change that cannot run in place gets from a
  plain ALTER (the table is copied; writes wait).

Every statement runs in the mariadb client, outside the process that measures. Bounded: one
run takes about a minute plus seeding. Prints a table, writes
bench/results/migration-<date>.md and docs/bench/migration-latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.service import Target, start, stop
from tests.mariadb import MariaDB, cleanup_private_server, start_private_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOT = ROOT / "docs" / "bench" / "migration-latency.png"
VENV_BIN = Path(sys.executable).parent
DATABASE = "items_bench_migration"
ADD_COLUMN = "ALTER TABLE items ADD COLUMN sku VARCHAR(64), ALGORITHM=INSTANT"
ADD_UNIQUE = "ALTER TABLE items ADD CONSTRAINT uq_items_sku UNIQUE (sku)"


@dataclass(frozen=True)
class Sample:
    at: float  # scheduled start: loop time while measuring, then seconds since the migration began
    latency_ms: float
    kind: str  # "GET" or "PATCH"
    failed: str  # "" when the answer was 2xx, else the status or the exception's name


@dataclass
class Run:
    variant: str
    migration_s: float
    samples: list[Sample]


def seed(server: MariaDB, doublings: int) -> int:
    with server.admin_connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO items (name, description, price, in_stock, created_at,"
            " updated_at, version) VALUES ('item', 'seeded', 1.00, 1, NOW(6), NOW(6), 1)"
        )
        for _ in range(doublings):
            cur.execute(
                "INSERT INTO items (name, description, price, in_stock, created_at,"
                " updated_at, version) SELECT CONCAT('item ', id), description,"
                " 1 + id % 997, id % 3 <> 0, created_at, updated_at, 1 FROM items"
            )
        cur.execute("SELECT COUNT(*) FROM items")
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


def sample_ids(server: MariaDB) -> list[int]:
    # INSERT ... SELECT may leave gaps in the ids: ask for real ones.
    with server.admin_connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM items WHERE id % 37 = 0 LIMIT 30000")
        return [int(row[0]) for row in cur.fetchall()]


def online_statement() -> str:
    """The index statement `items-service migrate` runs for 0002, from its own offline SQL."""
    import io

    from alembic import command

    from service import schema

    config = schema.alembic_config()
    config.output_buffer = io.StringIO()
    command.upgrade(config, "0001:0002", sql=True)
    lines = [
        line.rstrip(";")
        for line in config.output_buffer.getvalue().splitlines()
        if "uq_items_sku" in line
    ]
    assert len(lines) == 1, lines
    return lines[0]


def statements() -> dict[str, str]:
    return {
        "online": online_statement(),
        "plain": ADD_UNIQUE,
        "shared": f"{ADD_UNIQUE}, LOCK=SHARED",
        "copy": f"{ADD_UNIQUE}, ALGORITHM=COPY",
    }


def client_step(server: MariaDB, sql: str) -> Callable[[], None]:
    """Run ``sql`` in the mariadb client: out of this process, so the load's event loop and the
    statement never share a GIL."""
    client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"

    def run() -> None:
        subprocess.run(
            [
                client,
                f"--socket={server.socket_path}",
                "-uroot",
                DATABASE,
                "-e",
                f"{sql}; UPDATE alembic_version SET version_num = '0002'",  # noqa: S608
            ],
            check=True,
        )

    return run


def undo(server: MariaDB) -> None:
    with server.admin_connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE items DROP INDEX uq_items_sku")
        cur.execute("UPDATE alembic_version SET version_num = '0001'")


async def one(
    client: httpx.AsyncClient, kind: str, item: int, scheduled: float, out: list[Sample]
) -> None:
    loop = asyncio.get_running_loop()
    failed = ""
    try:
        if kind == "GET":
            response = await client.get(f"/items/{item}")
        else:
            response = await client.patch(
                f"/items/{item}", json={"price": round(random.uniform(1, 999), 2)}
            )
        if not 200 <= response.status_code < 300:
            failed = str(response.status_code)
    except httpx.HTTPError as error:
        failed = type(error).__name__
    out.append(Sample(scheduled, (loop.time() - scheduled) * 1000, kind, failed))


async def measure(
    base: str, ids: list[int], variant: str, step: Callable[[], None], rate: float, settle: float
) -> Run:
    loop = asyncio.get_running_loop()
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=limits) as client:
        stop_at: list[float] = []

        async def load() -> None:
            tasks: set[asyncio.Task[None]] = set()
            start_t = loop.time()
            i = 0
            while not stop_at or loop.time() < stop_at[0]:
                scheduled = start_t + i / rate
                if scheduled > loop.time():
                    await asyncio.sleep(scheduled - loop.time())  # pacing the open-loop load
                kind = "PATCH" if i % 5 == 0 else "GET"
                task = asyncio.create_task(
                    one(client, kind, random.choice(ids), scheduled, samples)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            await asyncio.gather(*tasks)

        driver = asyncio.create_task(load())
        await asyncio.sleep(settle)
        began = loop.time()
        await loop.run_in_executor(None, step)
        took = loop.time() - began
        await asyncio.sleep(settle)
        stop_at.append(loop.time())
        await driver
    return Run(
        variant, took, [Sample(s.at - began, s.latency_ms, s.kind, s.failed) for s in samples]
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(run: Run) -> dict[str, str]:
    during = [s for s in run.samples if 0 <= s.at <= run.migration_s]
    before = [s for s in run.samples if s.at < 0]
    row = {"variant": run.variant, "migration": f"{run.migration_s:.2f} s"}
    for kind in ("GET", "PATCH"):
        base = [s.latency_ms for s in before if s.kind == kind and not s.failed]
        now = [s.latency_ms for s in during if s.kind == kind]
        row[f"{kind} p99 before"] = f"{percentile(base, 0.99):.0f} ms"
        row[f"{kind} p99 during"] = f"{percentile(now, 0.99):.0f} ms"
        row[f"{kind} max during"] = f"{max(now, default=float('nan')):.0f} ms"
    failures = [s for s in run.samples if s.failed]
    row["failed"] = f"{len(failures)} of {len(run.samples)}"
    return row


def render(runs: list[Run], rows: int, rate: float) -> str:
    table = [summary(run) for run in runs]
    keys = list(table[0])
    lines = [
        f"# Migration benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{rows:,} rows; {rate:.0f} requests/s (4 GET : 1 PATCH), 2 workers; latency "
        "from each request's scheduled start.",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + " --- |" * len(keys),
    ]
    lines += ["| " + " | ".join(row[k] for k in keys) + " |" for row in table]
    return "\n".join(lines) + "\n"


def plot(runs: list[Run]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.6 * len(runs)), sharex=True, squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        ax.axvspan(0, run.migration_s, color="0.9", label="unique index being built")
        for kind, colour in (("GET", "tab:blue"), ("PATCH", "tab:orange")):
            points = [s for s in run.samples if s.kind == kind]
            ax.scatter(
                [s.at for s in points],
                [max(s.latency_ms, 0.1) for s in points],
                s=3,
                color=colour,
                label=f"{kind} /items/{{id}}",
            )
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{run.variant}: 0002 took {run.migration_s:.1f} s", fontsize=10)
        ax.legend(loc="upper right", fontsize=8, markerscale=3)
    axes[-1, 0].set_xlabel("time since the index build started (s)")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--doublings", type=int, default=20, help="rows = 2**doublings")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds before and after")
    parser.add_argument("--variants", default="online,plain,shared,copy")
    args = parser.parse_args()
    if args.rate > 1000 or args.doublings > 21:
        parser.error("keep it bounded: --rate <= 1000, --doublings <= 21")
    server = start_private_server()
    running = None
    try:
        url = server.create_database(DATABASE)
        os.environ["DATABASE_URL"] = url
        from alembic import command

        from service import schema
        from service.core.config import get_settings

        get_settings.cache_clear()
        command.upgrade(schema.alembic_config(), "0001")
        began = time.monotonic()
        rows = seed(server, args.doublings)
        print(f"seeded {rows:,} rows in {time.monotonic() - began:.1f} s", flush=True)
        with server.admin_connect(DATABASE) as conn, conn.cursor() as cur:
            cur.execute(ADD_COLUMN)
        ids = sample_ids(server)
        logdir = Path(tempfile.mkdtemp(prefix="bench-migration-"))
        running = start(
            Target(
                "service",
                "items-service",
                [str(VENV_BIN / "items-service"), "serve"],
                env={"DATABASE_URL": url},
            ),
            logdir,
        )
        base = f"http://127.0.0.1:{running.port}"
        sql = statements()
        # Warm the workers and their pools first; this run is not reported.
        asyncio.run(measure(base, ids, "warm-up", lambda: None, args.rate, args.settle))
        runs: list[Run] = []
        for variant in args.variants.split(","):
            print(f"{variant}: {sql[variant]}", flush=True)
            run = asyncio.run(
                measure(
                    base, ids, variant, client_step(server, sql[variant]), args.rate, args.settle
                )
            )
            runs.append(run)
            print(summary(run), flush=True)
            undo(server)
        report = render(runs, rows, args.rate)
        print(report)
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / f"migration-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}"
        stem.with_suffix(".md").write_text(report)
        with stem.with_suffix(".csv").open("w") as raw:
            raw.write("variant,at_s,latency_ms,kind,failed\n")
            for run in runs:
                raw.writelines(
                    f"{run.variant},{s.at:.4f},{s.latency_ms:.2f},{s.kind},{s.failed}\n"
                    for s in run.samples
                )
        plot(runs)
    finally:
        if running is not None:
            stop(running)
        cleanup_private_server(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
