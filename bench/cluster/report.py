"""Tables (markdown) of a cluster benchmark run."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.cluster.episodes import Episode

Measure = Callable[[Episode], float | None]
NONE = "-"  # a step that does not apply to the mechanism


def values(episodes: list[Episode], measure: Measure) -> list[float]:
    return [v for v in (measure(e) for e in episodes) if v is not None]


def median_max(values: list[float], missing: str = "never") -> str:
    if not values:
        return missing
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def ratio(theirs: list[float], ours: list[float]) -> str:
    if not theirs or not ours or statistics.median(ours) == 0:
        return "n/a"
    return f"{statistics.median(theirs) / statistics.median(ours):.1f}x"


def _table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---", *(["---:"] * (len(header) - 1))]
    lines = [" | ".join(header), " | ".join(align)]
    lines += [" | ".join(row) for row in rows]
    return "\n".join(f"| {line} |" for line in lines)


def upgrade_table(episodes: list[Episode]) -> str:
    ours = [e for e in episodes if e.mechanism == "ours"]
    helm = [e for e in episodes if e.mechanism == "helm"]
    rows: list[tuple[str, Measure]] = [
        ("image change → migration Job created", lambda e: e.since_start("job_created")),
        (
            "migration Job succeeded → Deployment updated",
            lambda e: e.between("job_succeeded", "deployment_updated"),
        ),
        ("image change → Deployment updated", lambda e: e.since_start("deployment_updated")),
        ("image change → all replicas on v2, old pods gone", lambda e: e.since_start("settled")),
    ]
    body = [
        [
            label,
            median_max(values(ours, m)),
            median_max(values(helm, m)),
            ratio(values(helm, m), values(ours, m)),
        ]
        for label, m in rows
    ]
    body.append(
        [
            "`helm upgrade --wait` returned",
            NONE,
            median_max(values(helm, lambda e: e.command_seconds)),
            "",
        ]
    )
    body.append(
        [
            "failed client requests (all episodes)",
            f"{sum(e.failed_requests for e in ours)} of {sum(e.requests for e in ours)}",
            f"{sum(e.failed_requests for e in helm)} of {sum(e.requests for e in helm)}",
            "",
        ]
    )
    return _table(
        [
            "v1 → v2 upgrade, seconds (median / max)",
            f"ours ({len(ours)})",
            f"helm upgrade --wait ({len(helm)})",
            "helm ÷ ours",
        ],
        body,
    )


def broken_table(episodes: list[Episode], readiness_window: float) -> str:
    by = {m: [e for e in episodes if e.mechanism == m] for m in ("ours", "helm", "plain")}
    # (label, measure, what a mechanism that never gets there shows)
    rows: list[tuple[str, Measure, str]] = [
        ("image change → first new pod", lambda e: e.since_start("first_new_pod"), NONE),
        (
            "first new pod → rollback started",
            lambda e: e.between("first_new_pod", "rollback_started"),
            "never",
        ),
        (
            f"… of which past the {readiness_window:.0f} s readiness window",
            lambda e: _past_window(e, readiness_window) if e.mechanism == "ours" else None,
            NONE,
        ),
        ("image change → rollback started", lambda e: e.since_start("rollback_started"), "never"),
        (
            "rollback started → all replicas back on the good image, new pods gone",
            lambda e: e.between("rollback_started", "back_on_old"),
            "never",
        ),
        ("image change → back on the good image", lambda e: e.since_start("back_on_old"), "never"),
        (
            "image change → ProgressDeadlineExceeded",
            lambda e: e.since_start("progress_deadline_exceeded"),
            NONE,
        ),
    ]
    body = []
    for label, measure, missing in rows:
        measured = {k: values(v, measure) for k, v in by.items()}
        body.append(
            [
                label,
                *(median_max(measured[k], missing) for k in by),
                ratio(measured["helm"], measured["ours"]),
            ]
        )
    body.append(
        [
            "`helm upgrade --atomic` returned (exit code)",
            NONE,
            median_max(values(by["helm"], lambda e: e.command_seconds))
            + f" (exit {sorted({e.command_exit or 0 for e in by['helm']})})",
            NONE,
            "",
        ]
    )
    body.append(
        [
            "failed client requests",
            *(
                f"{sum(e.failed_requests for e in v)} of {sum(e.requests for e in v)}"
                for v in by.values()
            ),
            "",
        ]
    )
    return _table(
        [
            "broken image, seconds (median / max)",
            f"ours ({len(by['ours'])})",
            f"helm --atomic ({len(by['helm'])})",
            f"plain Deployment ({len(by['plain'])})",
            "helm ÷ ours",
        ],
        body,
    )


def _past_window(episode: Episode, window: float) -> float | None:
    spent = episode.between("first_new_pod", "rollback_started")
    return None if spent is None else round(spent - window, 2)


def _phase_list(phases: dict[str, int]) -> str:
    return ", ".join(f"{count} {phase}" for phase, count in sorted(phases.items()))


def scale_table(scale: dict[str, Any]) -> str:
    failed = [level for level in scale.get("levels", []) if "failed" in level]
    levels = [level for level in scale.get("levels", []) if "failed" not in level]
    body = [
        [
            str(level["item_services"]),
            f"{level['rss_mib']:.0f}",
            f"{level['peak_rss_mib']:.0f}",
            f"{level['cpu_percent']:.2f}",
            f"{level['window_seconds']:.0f}",
            f"{level['reconciles']:.0f}",
            str(level.get("reads_per_item_service", "-")),
            str(level.get("writes_per_item_service", "-")),
            str(level["reads_per_reconcile"]),
            f"{level.get('lease_requests', 0):.0f}",
            f"{level.get('watch_requests', 0):.0f}",
        ]
        for level in levels
    ]
    table = _table(
        [
            "ItemServices",
            "RSS MiB",
            "peak RSS MiB",
            "idle CPU % of a core",
            "window s",
            "reconciles",
            "API reads per ItemService",
            "API writes per ItemService",
            "API reads per reconcile",
            "Lease requests (apart)",
            "informers' list and watch requests (apart)",
        ],
        body,
    )
    marginal = ""
    if len(levels) >= 2 and levels[-1]["item_services"] > levels[0]["item_services"]:
        low, high = levels[0], levels[-1]
        per = (
            (high["rss_mib"] - low["rss_mib"])
            * 1024
            / (high["item_services"] - low["item_services"])
        )
        marginal = (
            f"\n\nMarginal memory: {per:.1f} KiB of RSS per ItemService "
            f"({low['item_services']} → {high['item_services']})."
        )
    failures = "".join(
        f"\n\nAt {level['item_services']} ItemServices the measurement failed: "
        f"{level['failed']} (operator: "
        f"{'; '.join(level.get('operator_terminations') or []) or '-'})."
        for level in failed
    )
    settle = scale.get("settle")
    if settle is None:
        return f"{table}{marginal}{failures}"
    node = ""
    if settle.get("node_cpu_seconds"):
        share = 100 * settle["operator_cpu_seconds"] / settle["node_cpu_seconds"]
        available = settle["seconds_to_steady"] * (settle.get("node_cores") or 1)
        node = (
            f" The node was busy {settle['node_cpu_seconds']} CPU seconds of the "
            f"{available:.0f} its {settle.get('node_cores')} cores had in that time; the "
            f"operator's share of the busy time was {share:.1f}%."
        )
    return (
        f"{table}{marginal}\n\n{settle['item_services']} ItemServices applied at once (kubectl "
        f"apply took {settle['apply_seconds']} s): all in their first steady phase after "
        f"{settle['seconds_to_steady']} s ({_phase_list(settle.get('phases') or {})}); "
        f"the operator used {settle['operator_cpu_seconds']} "
        f"CPU seconds and made {settle['writes']:.0f} writes and {settle['reads']:.0f} "
        f"reads meanwhile.{node}{failures}"
        + "".join(
            f"\n- {name}: {why}"
            for name, why in sorted((settle.get("not_available") or {}).items())
        )
    )
