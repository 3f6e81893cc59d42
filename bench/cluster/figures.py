"""The PNGs of a cluster benchmark run, from its results (a run's JSON, one in progress, or the
medians kept in docs/bench/)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.cluster import analysis, plots, plots_classes, plots_scale, report
from bench.cluster.episodes import Episode
from bench.cluster.recorder import Recorder

# The operator's cost before the watch-fed caches (issue 13), drawn beside each new run.
SCALE_EARLIER = {
    "before": "operator-scale-before.json",
    "kopf-index": "operator-scale-kopf-index.json",
}


def _levels(path: Path) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = json.loads(path.read_text())["levels"] if path.exists() else []
    return levels


def timeline_episode(
    episode: Episode, recorder: Recorder, clients: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What the timeline plot draws of one episode: its pod series and client buckets."""
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
    measured = [lv for lv in (results.get("scale") or {}).get("levels", []) if "failed" not in lv]
    if measured:
        plots.operator_cost(measured, folder / "operator-cost.png")
        earlier = {key: _levels(folder / name) for key, name in SCALE_EARLIER.items()}
        plots_scale.scale(
            {**earlier, "after": measured},
            folder / "operator-scale.png",
            f"each level on a fresh operator process, then a steady window; run of "
            f"{str(results.get('date', '?'))[:10]} beside {', '.join(SCALE_EARLIER.values())}",
        )
    if results.get("class_medians"):
        plots_classes.classes(
            results["class_medians"],
            results.get("class_goals") or {},
            folder / "failure-classes.png",
            f"median of {results.get('reps', '?')} episodes per class and mechanism, every "
            f"mechanism side by side; "
            f"{results.get('runs') or 'run of ' + str(results.get('date', '?'))[:10]}"
            + (" (--quick: NOT default timeouts)" if results.get("quick") else ""),
            (results.get("limits") or {}).get("helm_timeout", 300),
        )
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
