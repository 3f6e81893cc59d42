"""Cluster benchmark: the operator against Helm and a plain Deployment, and the operator's cost.

    uv run --group bench python -m bench.cluster [--reps 5] [--classes ...] [--skip-scale] ...

Needs a cluster (KUBECONFIG; bench/run-cluster brings up the local one) and the images built by
hack/images. In one run it
  1. deploys `reps` workloads per mechanism, each with its own database and in-cluster client:
     ItemServices (the operator, installed by its chart, CRD defaults), releases of a chart
     whose migration is a pre-upgrade hook (rendered from the operator's own builders:
     identical pods) for `helm upgrade --atomic` at its default timeout and at `--timeout`
     equal to ours' readiness window, and plain Deployments;
  2. checks that a slow starter (startup probe) and a readiness blip are not rolled back
     (false_rollbacks.py);
  3. upgrades v1 -> v2, ours and `helm upgrade --wait` alternating, one at a time;
  4. for each failure class (classes.py: unpullable, crash loop, OOM at start, never ready,
     5xx), applies its image to the i-th workload of every mechanism together, the next
     ones 8 s later (failure_episodes.py);
  5. measures the operator at 1, 50 and 200 ItemServices (replicas 0) and the time 200 newly
     applied ones take to reach their first steady phase.
Times come from watch events stamped on arrival (object timestamps have 1 s resolution), but
a container's start, which is the kubelet's stamp when its event arrives later.
Writes bench/results/cluster-<date>.{md,json} and the PNGs in docs/bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform as host
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.cluster import report, report_classes, scale
from bench.cluster.classes import CLASSES, FailureClass, parse_classes
from bench.cluster.episodes import QUICK_DEADLINE, Episode, Fleet, count_failures, upgrades
from bench.cluster.failure_episodes import analysis_supported, run_classes
from bench.cluster.false_rollbacks import FalseRollbacks
from bench.cluster.figures import draw, timeline_episode
from bench.cluster.images import digest_aliases
from bench.cluster.node_cpu import NodeCpu, as_dicts, class_cpu, failures_in_context
from bench.cluster.platform import (
    FALSE,
    HELM,
    HELM_EQ,
    OURS,
    PLAIN,
    Platform,
    down,
    save_operator_logs,
    up,
)
from bench.cluster.recorder import Recorder
from tests.cluster.kube_support import KUBECTL
from tests.e2e.platform import helm_binary
from tests.operator.cluster.e2e import OPERATOR_IMAGE, V1

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "docs" / "bench"
# What docs/bench keeps of a run with failure classes (enough to redraw failure-classes.png).
MEDIAN_KEYS = (
    "date",
    "reps",
    "quick",
    "versions",
    "limits",
    "class_medians",
    "class_goals",
    "false_rollbacks",
    "phase_seconds",
)


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run-cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=5, help="workloads per mechanism")
    parser.add_argument("--scale", default="1,50,200", help="ItemService counts to measure")
    parser.add_argument("--window", type=float, default=90, help="idle measurement seconds")
    parser.add_argument(
        "--classes",
        default=",".join(CLASSES),
        help="failure classes, in this order (5xx is skipped while the CRD lacks "
        "spec.rollout.analysis)",
    )
    parser.add_argument(
        "--plain-deadline",
        default="",
        metavar="CLASSES",
        help="classes in which the plain Deployment's ProgressDeadlineExceeded (600 s) is "
        "waited for (+~4.5 min each); elsewhere it is watched as long as the others",
    )
    parser.add_argument(
        "--false-rollbacks", type=int, default=10, help="runs of each must-not-roll-back image"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"pipeline check: Helm's default timeout replaced by {QUICK_DEADLINE} s"
        " (not a result: the defaults are what the comparison is about)",
    )
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="passed to the operator (chart extraArgs), e.g. --operator-arg=--cache-reads=on",
    )
    parser.add_argument("--skip-episodes", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the namespaces for a look")
    parser.add_argument("--plots", type=Path, default=PLOTS)
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="RESULTS_JSON",
        help="only draw the plots again from a results file",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.replot:
        draw(json.loads(args.replot.read_text()), args.plots)
        return 0
    levels = [int(n) for n in args.scale.split(",") if n]
    classes = parse_classes(args.classes)
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "versions": _versions(),
        "reps": args.reps,
        "quick": args.quick,
        "phase_seconds": {},
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
        if results.get("class_medians"):  # beside the plot, so --replot redraws it
            args.plots.mkdir(parents=True, exist_ok=True)
            medians = {k: results[k] for k in MEDIAN_KEYS if k in results}
            medians["source"] = f"bench/results/cluster-{stamp}.json, medians only"
            path = args.plots / f"cluster-{stamp[:10]}-classes.json"
            path.write_text(json.dumps(medians, indent=1) + "\n")
        draw(results, args.plots)
        return text

    print(header, file=sys.stderr)
    with _phase(results, "platform up"):
        platform = up(tuple(args.operator_arg))
    results["limits"] = {
        "helm_timeout": QUICK_DEADLINE if args.quick else 300,
        "progress_deadline": 600,
    }
    try:
        if not args.skip_episodes:
            _episodes(args, platform, classes, results, sections, save)
            if not args.skip_scale:  # the cost phase replaces the operator pod, and its log
                save_operator_logs(RESULTS / f"cluster-{stamp}-operator-episodes.log")
        if not args.skip_scale:
            print(f"operator cost at {levels} ItemServices", file=sys.stderr)
            try:
                with _phase(results, "operator cost"):
                    scale.run(platform, levels, args.window, results.setdefault("scale", {}))
            finally:  # the levels measured before a failure are results too
                save()
            sections += ["## Operator cost", report.scale_table(results["scale"])]
    finally:
        save_operator_logs(RESULTS / f"cluster-{stamp}-operator.log")
        if not args.keep:
            with _phase(results, "teardown"):
                down()
    print(save())
    return 0


@contextlib.contextmanager
def _phase(results: dict[str, Any], name: str) -> Iterator[None]:
    """Wall time of each phase, kept in the results: what a full run's duration is made of."""
    began = time.monotonic()
    try:
        yield
    finally:
        results["phase_seconds"][name] = round(time.monotonic() - began, 1)
        print(f"{name}: {results['phase_seconds'][name]:.0f} s", file=sys.stderr, flush=True)


def _tags(platform: Platform) -> list[str]:
    images, faults = platform.images, platform.faults
    return [images.v1, images.v2, images.never_ready, *vars(faults).values()]


def _episodes(
    args: argparse.Namespace,
    platform: Platform,
    classes: list[FailureClass],
    results: dict[str, Any],
    sections: list[str],
    save: Callable[[], str],
) -> None:
    if "5xx" in [c.name for c in classes] and not analysis_supported():
        classes = [c for c in classes if c.name != "5xx"]
        sections.append(
            "5xx class skipped: the installed CRD has no spec.rollout.analysis (issue 14, part 3)"
        )
    namespaces = [OURS, HELM, HELM_EQ, PLAIN, FALSE]
    with (
        tempfile.TemporaryDirectory(prefix="bench-charts-") as workdir,
        Recorder(namespaces, digest_aliases(_tags(platform))) as recorder,
        NodeCpu() as cpu,
    ):
        fleet = Fleet(platform, Path(workdir), args.reps)
        checks = FalseRollbacks(platform, args.false_rollbacks)
        print("deploying the workloads", file=sys.stderr)
        with _phase(results, "deploy"):
            fleet.deploy()
        if args.false_rollbacks:
            print("false rollbacks: slow start and readiness blip", file=sys.stderr)
            with _phase(results, "false rollbacks"):
                # After the fleet, not with it: 40 migrations at once would fill the node.
                checks.deploy()
                results["false_rollbacks"] = checks.run(recorder)
                checks.remove()
            sections += [
                "## Must not be rolled back",
                report_classes.false_rollback_table(results["false_rollbacks"]),
            ]
        with _phase(results, "upgrades"):
            fleet.start_clients(("ours", "helm"))
            print("upgrades v1 -> v2", file=sys.stderr)
            upgraded = upgrades(fleet, recorder)
        results["upgrades"] = [e.as_dict() for e in upgraded]
        fleet.start_clients(("helm-eq", "plain"))

        def keep(done: dict[str, list[Episode]]) -> None:
            results["classes"] = {n: [e.as_dict() for e in es] for n, es in done.items()}
            save()

        with _phase(results, "failure classes"):
            failed = run_classes(
                fleet,
                recorder,
                classes,
                helm_timeout=results["limits"]["helm_timeout"],
                deadline_classes=set(filter(None, args.plain_deadline.split(","))),
                on_class=keep,
            )
        clients = fleet.stop_clients()
        count_failures(upgraded, clients)
        for episodes in failed.values():
            count_failures(episodes, clients)
        results["upgrades"] = [e.as_dict() for e in upgraded]
        results["classes"] = {n: [e.as_dict() for e in es] for n, es in failed.items()}
        results["class_medians"] = report_classes.class_medians(failed)
        results["class_goals"] = {
            n: max(report_classes.goal(n, e) for e in es if e.mechanism == "ours")
            for n, es in failed.items()
        }
        results["client_errors"] = {n: c.get("errors", []) for n, c in clients.items()}
        results["node_cpu"] = {n: class_cpu(cpu, es) for n, es in failed.items()}
        results["client_errors_placed"] = failures_in_context(cpu, results["client_errors"])
        results["node_cpu_samples"] = as_dicts(cpu.samples)
        results["watch_errors"] = recorder.errors  # watches re-opened after an error
        sections += [
            "## Upgrade v1 → v2",
            report.upgrade_table(upgraded),
            "## Failure classes",
            report_classes.reaction_table(failed),
            report_classes.requests_table(failed),
            report_classes.details_table(failed),
            report_classes.node_cpu_table(results["node_cpu"], results["client_errors_placed"]),
        ]
        never_ready = [e for e in failed.get("never-ready", []) if e.mechanism != "helm-eq"]
        if never_ready:
            # The pictures of the never-ready episode (plots.py), as before issue 14.
            results["broken"] = [e.as_dict() for e in never_ready]
            windows = [e.limit for e in never_ready if e.mechanism == "ours" and e.limit]
            results["limits"]["readiness_window"] = statistics.median(windows) if windows else 120
            firsts = [
                next(e for e in never_ready if e.mechanism == m) for m in ("ours", "helm", "plain")
            ]
            results["timelines"] = [timeline_episode(e, recorder, clients) for e in firsts]
        save()


if __name__ == "__main__":
    sys.exit(main())
