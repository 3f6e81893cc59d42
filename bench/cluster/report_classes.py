"""Tables (markdown) of the failure classes and the false-rollback checks (issue 14), and the
goals they are judged against."""

from __future__ import annotations

import statistics
from typing import Any

from bench.cluster.classes import CLASSES, MECHANISMS
from bench.cluster.episodes import Episode
from bench.cluster.report import median_max

HEADS = {
    "ours": "ours (CRD defaults)",
    "helm": "helm --atomic, default timeout",
    "helm-eq": "helm --atomic --timeout = ours' window",
    "plain": "plain Deployment",
}
CERTAIN_GOAL = 10.0
FIVE_XX_GOAL = 60.0
WINDOW_FLOOR = 20.0


def reaction(e: Episode) -> float | None:
    """Seconds from the class's first failing pod to rollback started."""
    return e.between("first_failing", "rollback_started")


def goal(failure: str, e: Episode) -> float:
    """The most ours may take in this episode: seconds for the certain classes, 3 x the previous
    good release's time-to-ready (floor 20 s) for never-ready, 60 s for a 5xx regression."""
    if CLASSES[failure].certain:
        return CERTAIN_GOAL
    if failure == "never-ready":
        return max(WINDOW_FLOOR, 3 * (e.previous_time_to_ready or 0))
    return FIVE_XX_GOAL


def goal_verdict(failure: str, ours: list[Episode]) -> str:
    """ "met" when the median (certain classes) or every episode (the others) is within."""
    times = [(reaction(e), goal(failure, e)) for e in ours]
    if not times:
        return "-"
    if any(t is None for t, _ in times):
        missing = sum(1 for t, _ in times if t is None)
        return f"not met: {missing} of {len(times)} never rolled back"
    measured = [t for t, _ in times if t is not None]
    if CLASSES[failure].certain:
        median = statistics.median(measured)
        return f"{'met' if median <= CERTAIN_GOAL else 'not met'} (p50 ≤ {CERTAIN_GOAL:.0f} s)"
    within = sum(1 for t, g in times if t is not None and t <= g)
    limit = max(g for _, g in times)
    return f"{within} of {len(times)} within {limit:.0f} s"


def _by(episodes: list[Episode], mechanism: str) -> list[Episode]:
    return [e for e in episodes if e.mechanism == mechanism]


def _values(episodes: list[Episode]) -> list[float]:
    return [v for v in (reaction(e) for e in episodes) if v is not None]


def _never(episodes: list[Episode], mechanism: str) -> str:
    if mechanism != "plain" or not episodes:
        return "never"
    waited = max(_waited(e) for e in episodes)
    if any(e.steps.get("progress_deadline_exceeded") for e in episodes):
        at = [e.since_start("progress_deadline_exceeded") for e in episodes]
        found = [a for a in at if a is not None]
        return f"never (ProgressDeadlineExceeded at {statistics.median(found):.0f} s)"
    return f"never (not waited past {waited:.0f} s)"


def _waited(e: Episode) -> float:
    """Seconds from the first failing pod (or the image change) to the episode's end."""
    start = e.steps.get("first_failing") or e.started
    return (e.ended or start) - start


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(first: str, columns: list[str]) -> list[str]:
    return [_row([first, *columns]), _row(["---", *(["---:"] * len(columns))])]


def reaction_table(results: dict[str, list[Episode]]) -> str:
    lines = _header(
        "first failing pod → rollback started, s (median / max)",
        [*(HEADS[m] for m in MECHANISMS), "goal (ours)"],
    )
    for name, episodes in results.items():
        cells = [f"{CLASSES[name].title}; clock from: {CLASSES[name].first_failing}"]
        for mechanism in MECHANISMS:
            mine = _by(episodes, mechanism)
            cells.append(median_max(_values(mine), _never(mine, mechanism)) if mine else "-")
        cells.append(goal_verdict(name, _by(episodes, "ours")))
        lines.append(_row(cells))
    return "\n".join(lines)


def requests_table(results: dict[str, list[Episode]]) -> str:
    lines = _header("failed client requests (of all, per class)", [HEADS[m] for m in MECHANISMS])
    for name, episodes in results.items():
        cells = [name]
        for mechanism in MECHANISMS:
            mine = _by(episodes, mechanism)
            failed, total = sum(e.failed_requests for e in mine), sum(e.requests for e in mine)
            cells.append(f"{failed} of {total}" if mine else "-")
        lines.append(_row(cells))
    return "\n".join(lines)


def node_cpu_table(by_class: dict[str, Any], failures: list[dict[str, Any]]) -> str:
    """Where the node's CPU went in each class (node_cpu.py), and the CPU pressure in the
    seconds the clients' requests failed."""
    lines = _header(
        "node CPU during the class",
        [
            "s",
            "busy, % of the cores",
            "pods, % of busy",
            "cluster daemons, % of busy",
            "CPU pressure %, mean / max",
            "s with pressure ≥ 90 %",
        ],
    )
    for name, cpu in by_class.items():
        if cpu is None:
            continue
        lines.append(
            _row(
                [
                    name,
                    str(cpu["seconds"]),
                    f"{cpu['busy_percent']:.0f}",
                    _percent(cpu["pods_percent"]),
                    _percent(cpu["daemons_percent"]),
                    f"{_percent(cpu['pressure_mean'])} / {_percent(cpu['pressure_max'])}",
                    str(cpu["seconds_full"]),
                ]
            )
        )
    timeouts = [f for f in failures if f.get("status") != 500]
    pressures = sorted(f["pressure"] for f in timeouts if f.get("pressure") is not None)
    if pressures:
        lines.append(
            f"\nClient failures other than HTTP 500 (first 20 per client): {len(timeouts)}; CPU "
            f"pressure in their seconds: median {statistics.median(pressures):.0f} %, "
            f"min {pressures[0]:.0f} %."
        )
    elif not timeouts:
        lines.append("\nNo client failure other than HTTP 500 was recorded.")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def details_table(results: dict[str, list[Episode]]) -> str:
    """What each episode ran with: ours' window and reason, Helm's timeout and exit code."""
    lines = _header(
        "class",
        [
            "ours' window, s",
            "previous good release's time-to-ready, s",
            "ours' reason",
            "helm-eq --timeout, s",
            "helm exit (default / eq)",
            "ours from the first new pod's creation, s (median / max)",
            "ours' canary analysis",
            "ours' client, requests/s (median)",
        ],
    )

    def joined(values: list[Any]) -> str:
        return ", ".join(sorted({str(v) for v in values if v is not None})) or "-"

    for name, episodes in results.items():
        ours = _by(episodes, "ours")
        lines.append(
            _row(
                [
                    name,
                    joined([f"{e.limit:.0f}" for e in ours if e.limit is not None]),
                    joined([e.previous_time_to_ready for e in ours]),
                    joined([e.reason for e in ours]),
                    joined([f"{e.limit:.0f}" for e in _by(episodes, "helm-eq") if e.limit]),
                    f"{joined([e.command_exit for e in _by(episodes, 'helm')])} / "
                    f"{joined([e.command_exit for e in _by(episodes, 'helm-eq')])}",
                    median_max(_from_creation(ours), "-"),
                    joined([(e.analysis or "").split(":", 1)[0] or None for e in ours]),
                    _median_rate(ours),
                ]
            )
        )
    return "\n".join(lines)


def _median_rate(episodes: list[Episode]) -> str:
    """The clients' achieved rate over their episodes (10 a second asked: fewer means each
    answer took longer than 0.1 s, and the canary had less evidence to go on)."""
    rates = [
        e.requests / (e.ended - e.started) for e in episodes if e.ended and e.ended > e.started
    ]
    return f"{statistics.median(rates):.1f}" if rates else "-"


def _from_creation(episodes: list[Episode]) -> list[float]:
    """Seconds from the first new pod's creation to rollback started (scheduling and the
    container's start included: what a user waits on a loaded node)."""
    out = []
    for e in episodes:
        created, started = e.steps.get("first_new_pod"), e.steps.get("rollback_started")
        if created is not None and started is not None:
            out.append(round(started - created, 1))
    return out


def false_rollback_table(summary: dict[str, dict[str, Any]]) -> str:
    lines = _header(
        "must not be rolled back",
        [
            "runs",
            "rolled back (expected 0)",
            "no verdict in time",
            "pod created → ready, s (median)",
            "image applied → Available, s (median / max)",
            "readiness blips seen before Available",
        ],
    )
    for kind, s in summary.items():
        reasons = ", ".join(sorted(set(s["rolled_back"].values())))
        median = s.get("median_pod_created_to_ready")
        lines.append(
            _row(
                [
                    kind,
                    str(s["runs"]),
                    f"{len(s['rolled_back'])}" + (f" ({reasons})" if reasons else ""),
                    str(s["undecided"]),
                    "-" if median is None else f"{median:.1f}",
                    median_max(s["seconds_to_available"], "-"),
                    str(s["blips_before_proven"]) if kind == "blip" else "-",
                ]
            )
        )
    return "\n".join(lines)


def class_medians(results: dict[str, list[Episode]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per class and mechanism: median and max reaction, episodes, and how many never acted
    (what docs/bench keeps, so the plot can be redrawn without the run)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, episodes in results.items():
        for mechanism in MECHANISMS:
            mine = _by(episodes, mechanism)
            if not mine:
                continue
            values = _values(mine)
            out.setdefault(name, {})[mechanism] = {
                "median": statistics.median(values) if values else None,
                "max": max(values) if values else None,
                "episodes": len(mine),
                "never": len(mine) - len(values),
                "waited": round(max(_waited(e) for e in mine), 1),
            }
    return out
