"""Cluster benchmark: the operator against Helm and a plain Deployment, and the operator's cost.

    bench/run-cluster [--reps 5] [--scale 1,50,200] [--window 90] [--quick] [--skip-scale]

Needs a cluster (KUBECONFIG; bench/run-cluster brings up the local one) and the images built by
hack/images. In one run it
  1. deploys `reps` workloads per mechanism, each with its own database and in-cluster client:
     ItemServices (the operator, installed by its chart), releases of a chart whose migration is
     a pre-upgrade hook (rendered from the operator's own builders: identical pods), and plain
     Deployments;
  2. upgrades v1 -> v2, ours and `helm upgrade --wait` alternating, one at a time;
  3. applies a never-ready image to every workload at once: ItemService, `helm upgrade --atomic`
     at its default 5 min timeout, plain Deployment with its default 600 s progress deadline;
  4. measures the operator at 1, 50 and 200 ItemServices (replicas 0) and the time 200 newly
     applied ones take to reach their first steady phase.
Times come from watch events stamped on arrival (object timestamps have 1 s resolution).
Writes bench/results/cluster-<date>.{md,json} and the PNGs in docs/bench/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as host
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import analysis, plots, report, scale
from bench.cluster.episodes import QUICK_DEADLINE, Episode, Fleet, broken, count_failures, upgrades
from bench.cluster.platform import HELM, OURS, PLAIN, down, up
from bench.cluster.recorder import Recorder
from tests.cluster.kube_support import KUBECTL
from tests.e2e.platform import helm_binary
from tests.operator.cluster.e2e import OPERATOR_IMAGE, V1

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "docs" / "bench"
DEFAULT_READINESS_WINDOW = 120


def _versions() -> dict[str, str]:
    def out(*command: str) -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        return result.stdout.strip()

    server = (
        json.loads(out(KUBECTL, "version", "-o", "json") or "{}")
        .get("serverVersion", {})
        .get("gitVersion", "?")
    )
    return {
        "kubernetes": server,
        "helm": out(helm_binary(), "version", "--short"),
        "service_image": V1,
        "operator_image": OPERATOR_IMAGE,
        "cpus": str(os.cpu_count()),
        "kernel": host.release(),
    }


def _timeline_episode(
    episode: Episode, recorder: Recorder, clients: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    obs = recorder.snapshot()
    w, t0 = episode.workload, episode.started
    end = (episode.ended or time.time()) + 20
    before = analysis.pod_counts(obs, w, 0, t0)
    data = episode.as_dict()
    data.update(
        pods_before=before[-1][1] if before else {},
        pod_series=analysis.pod_counts(obs, w, t0, end),
        plot_end=end,
        buckets={
            s: v
            for s, v in (clients.get(w.name) or {}).get("buckets", {}).items()
            if t0 - 5 <= int(s) <= end
        },
    )
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run-cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=5, help="workloads per mechanism")
    parser.add_argument("--scale", default="1,50,200", help="ItemService counts to measure")
    parser.add_argument("--window", type=float, default=90, help="idle measurement seconds")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="pipeline check: 20 s readiness window, baselines give up after 60 s"
        " (not a result: the defaults are what the comparison is about)",
    )
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-episodes", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the namespaces for a look")
    parser.add_argument("--plots", type=Path, default=PLOTS)
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="RESULTS_JSON",
        help="only draw the plots again from a results file",
    )
    args = parser.parse_args(argv)
    if args.replot:
        draw(json.loads(args.replot.read_text()), args.plots)
        return 0
    levels = [int(n) for n in args.scale.split(",") if n]

    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "versions": _versions(),
        "reps": args.reps,
        "quick": args.quick,
    }
    stamp = started.strftime("%Y-%m-%d-%H%M")
    header = (
        f"Cluster benchmark, {started:%Y-%m-%d %H:%M} UTC, "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + f"; {args.reps} workloads per mechanism"
        + (" (--quick: NOT default timeouts)" if args.quick else "")
    )
    sections: list[str] = []

    def save() -> str:
        """Write what is measured so far: a later failure does not lose the earlier phases."""
        text = "\n\n".join([header, *sections]) + "\n"
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"cluster-{stamp}.md").write_text(text)
        (RESULTS / f"cluster-{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
        draw(results, args.plots)
        return text

    print(header, file=sys.stderr)
    platform = up()
    window = 20 if args.quick else DEFAULT_READINESS_WINDOW
    # What the timeline shades: each mechanism's wait before it acts, as this run set them.
    results["limits"] = {
        "readiness_window": window,
        "helm_timeout": QUICK_DEADLINE if args.quick else 300,
        "progress_deadline": QUICK_DEADLINE if args.quick else 600,
    }
    try:
        if not args.skip_episodes:
            with (
                tempfile.TemporaryDirectory(prefix="bench-charts-") as workdir,
                Recorder([OURS, HELM, PLAIN]) as recorder,
            ):
                fleet = Fleet(platform, Path(workdir), args.reps, args.quick)
                print("deploying the workloads", file=sys.stderr)
                fleet.deploy()
                fleet.start_clients(("ours", "helm"))
                print("upgrades v1 -> v2", file=sys.stderr)
                upgraded = upgrades(fleet, recorder)
                fleet.start_clients(("plain",))
                print("broken image, every mechanism at once", file=sys.stderr)
                failed = broken(fleet, recorder)
                clients = fleet.stop_clients()
                count_failures(upgraded, clients)
                count_failures(failed, clients)
                results["upgrades"] = [e.as_dict() for e in upgraded]
                results["broken"] = [e.as_dict() for e in failed]
                results["client_errors"] = {n: c.get("errors", []) for n, c in clients.items()}
                results["watch_errors"] = recorder.errors  # watches re-opened after an error
                sections += [
                    "## Upgrade v1 → v2",
                    report.upgrade_table(upgraded),
                    "## Broken image (never ready)",
                    report.broken_table(failed, window),
                ]
                firsts = [
                    next(e for e in failed if e.mechanism == m) for m in ("ours", "helm", "plain")
                ]
                results["timelines"] = [_timeline_episode(e, recorder, clients) for e in firsts]
                save()
        if not args.skip_scale:
            print(f"operator cost at {levels} ItemServices", file=sys.stderr)
            results["scale"] = scale.run(platform, levels, args.window)
            sections += ["## Operator cost", report.scale_table(results["scale"])]
    finally:
        if not args.keep:
            down()
    print(save())
    return 0


def draw(results: dict[str, Any], folder: Path) -> None:
    """The PNGs of whatever parts `results` holds (a run's JSON, or one in progress)."""
    folder.mkdir(parents=True, exist_ok=True)
    if results.get("timelines"):
        plots.timeline(
            results["timelines"], folder / "rollback-timeline.png", results.get("limits")
        )
    if results.get("upgrades") and results.get("broken"):
        upgraded = [Episode.from_dict(e) for e in results["upgrades"]]
        failed = [Episode.from_dict(e) for e in results["broken"]]
        plots.reactions(_reaction_rows(upgraded, failed), folder / "reaction-times.png")
    if results.get("scale"):
        plots.operator_cost(results["scale"]["levels"], folder / "operator-cost.png")
    medians = broken_medians(results)
    if medians:
        plots.windows(
            medians,
            folder / "rollback-windows.png",
            results.get("limits"),
            results.get("holds"),
            f"never-ready image, each step the median of {results.get('reps', '?')} "
            f"episodes per mechanism; run of {str(results.get('date', '?'))[:10]}",
        )


# The steps of a broken-image episode the windows picture places (episodes._broken_steps).
WINDOW_STEPS = (
    "deployment_updated",
    "first_new_pod",
    "rollback_started",
    "back_on_old",
    "progress_deadline_exceeded",
)


def broken_medians(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per mechanism, the median of each step (seconds since the image change) over the run's
    broken-image episodes; or `broken_medians` as given (a run whose episodes were not kept,
    its medians copied from its report)."""
    if results.get("broken_medians"):
        given: dict[str, dict[str, float]] = results["broken_medians"]
        return given
    failed = [Episode.from_dict(e) for e in results.get("broken", [])]
    medians: dict[str, dict[str, float]] = {}
    for mechanism in ("ours", "helm", "plain"):
        mine = [e for e in failed if e.mechanism == mechanism]
        steps: dict[str, float] = {}
        for step in WINDOW_STEPS:
            found = [v for v in (e.since_start(step) for e in mine) if v is not None]
            if found:
                steps[step] = statistics.median(found)
        if "first_new_pod" in steps:
            medians[mechanism] = steps
    return medians


def _reaction_rows(
    upgraded: list[Episode], failed: list[Episode]
) -> list[tuple[str, str, list[float]]]:
    """(label, mechanism, values) per bar of the reaction-time plot, mechanisms side by side."""
    steps: list[tuple[str, list[Episode], report.Measure, tuple[str, ...]]] = [
        (
            "upgrade: image change → Job created",
            upgraded,
            lambda e: e.since_start("job_created"),
            ("ours", "helm"),
        ),
        (
            "upgrade: Job succeeded → Deployment updated",
            upgraded,
            lambda e: e.between("job_succeeded", "deployment_updated"),
            ("ours", "helm"),
        ),
        (
            "upgrade: total (helm: --wait)",
            upgraded,
            lambda e: e.since_start("settled"),
            ("ours", "helm"),
        ),
        (
            "broken image: change → rollback started (helm: --atomic)",
            failed,
            lambda e: e.since_start("rollback_started"),
            ("ours", "helm"),
        ),
        (
            "broken image: change → ProgressDeadlineExceeded (no rollback)",
            failed,
            lambda e: e.since_start("progress_deadline_exceeded"),
            ("plain",),
        ),
        (
            "broken image: rollback started → back on the good image",
            failed,
            lambda e: e.between("rollback_started", "back_on_old"),
            ("ours", "helm"),
        ),
    ]
    return [
        (
            label,
            mechanism,
            report.values([e for e in episodes if e.mechanism == mechanism], measure),
        )
        for label, episodes, measure, mechanisms in steps
        for mechanism in mechanisms
    ]


if __name__ == "__main__":
    sys.exit(main())
