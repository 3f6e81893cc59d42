"""PNG plots of a cluster benchmark run (matplotlib, no display needed).

Each axis carries one quantity on a linear scale; where values differ by orders of magnitude
(an upgrade takes seconds, Helm's timeout minutes) they get panels of their own instead of a log
axis, so bar lengths compare honestly. Colours are the mechanisms, named in every legend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

COLORS = {"ours": "#1b7837", "helm": "#2166ac", "plain": "#b2182b"}
NAMES = {
    "ours": "ItemService (the operator)",
    "helm": "Helm (upgrade --wait; --atomic for the broken image)",
    "plain": "plain Deployment",
}
TITLES = {
    "ours": "ItemService (operator)",
    "helm": "helm upgrade --atomic (default timeout)",
    "plain": "plain Deployment (default progress deadline)",
}
# The defaults the comparison is about (bench/cluster/__main__.py stores the ones a run used).
DEFAULT_LIMITS = {"readiness_window": 120, "helm_timeout": 300, "progress_deadline": 600}


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


def timeline_figure(
    episodes: list[dict[str, Any]], limits: dict[str, float] | None = None
) -> Figure:
    """One broken-image episode per mechanism, one panel each, pods against seconds since the
    image was changed; shaded: the window each mechanism waits before it acts."""
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    fig, axes = plt.subplots(
        len(episodes), 1, figsize=(10, 2.8 * len(episodes)), sharex=True, squeeze=False
    )
    for ax, episode in zip(axes[:, 0], episodes, strict=True):
        t0, mechanism = episode["started"], episode["mechanism"]
        steps = episode["steps"]
        if mechanism == "ours" and steps.get("first_new_pod"):
            start = steps["first_new_pod"] - t0
            ax.axvspan(
                start,
                start + limits["readiness_window"],
                color=COLORS["ours"],
                alpha=0.12,
                label=f"readiness window ({limits['readiness_window']:.0f} s "
                "from the first new pod)",
            )
        elif mechanism == "helm":
            ax.axvspan(
                0,
                limits["helm_timeout"],
                color=COLORS["helm"],
                alpha=0.12,
                label=f"helm --timeout ({limits['helm_timeout']:.0f} s)",
            )
        elif mechanism == "plain":
            ax.axvspan(
                0,
                limits["progress_deadline"],
                color=COLORS["plain"],
                alpha=0.10,
                label=f"progressDeadlineSeconds ({limits['progress_deadline']:.0f} s)",
            )
        for image, label, style, column in (
            (episode["old"], "good image: ready pods", "-", 1),
            (episode["new"], "never-ready image: pods present", "--", 0),
        ):
            xs, ys = [0.0], [episode["pods_before"].get(image, (0, 0))[column]]
            for at, counts in episode["pod_series"]:
                xs.append(at - t0)
                ys.append(counts.get(image, (0, 0))[column])
            xs.append(episode["plot_end"] - t0)
            ys.append(ys[-1])
            ax.step(xs, ys, where="post", linestyle=style, color=COLORS[mechanism], label=label)
        # Failed requests are a count, not pods: marks along the bottom, not a second axis.
        failed = [int(s) - t0 for s, (_, bad) in episode["buckets"].items() if bad]
        if failed:
            ax.plot(
                failed,
                [-0.1] * len(failed),
                "|",
                color="black",
                markersize=10,
                label="a second with failed requests",
            )
        if steps.get("rollback_started"):
            ax.axvline(
                steps["rollback_started"] - t0,
                color="black",
                linestyle=":",
                label="rollback started",
            )
        ax.set_title(
            f"{TITLES[mechanism]}: {episode['failed_requests']} failed of "
            f"{episode['requests']} requests",
            fontsize=10,
        )
        ax.set_ylabel("pods")
        ax.set_ylim(-0.3, 3.8)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the broken image was applied")
    axes[-1, 0].set_xlim(left=0)
    fig.tight_layout()
    return fig


def timeline(
    episodes: list[dict[str, Any]], path: Path, limits: dict[str, float] | None = None
) -> None:
    _save(timeline_figure(episodes, limits), path)


# The phases of a broken-image episode, the same colour in every row (the windows wear the
# mechanism's colour): what the workload is doing while the mechanism waits.
PHASES = {
    "starting": ("#bdbdbd", "starting: the migration Job (operator, Helm), then the new pod"),
    "held": ("#fdae61", "broken pod held unready; the good pods serve"),
    "hold": ("#762a83", "hold: database or capacity out, the verdict's clock stopped"),
    "rollback": ("#252525", "rollback: until only good pods are left"),
}
WINDOWS = {
    "ours": ("operator", "readiness window", "from the first new pod"),
    "helm": ("Helm", "--timeout", "after the hook Job"),
    "plain": ("plain Deployment", "progressDeadlineSeconds", "from the rollout"),
}


def windows_figure(
    steps: dict[str, dict[str, float]],
    limits: dict[str, float] | None = None,
    holds: dict[str, list[tuple[float, float]]] | None = None,
    title: str = "",
) -> Figure:
    """A broken-image episode per mechanism as one row of spans on a shared time axis (seconds
    since the image was applied): the phases, and shaded behind them the window the mechanism
    waits before it acts. A hold (the operator's verdict clock stopped: database or capacity
    out) cuts the readiness window short, and a full one starts when the hold ends.

    `steps[mechanism]` holds seconds since the image change: first_new_pod, and where they
    happened deployment_updated, rollback_started, back_on_old, progress_deadline_exceeded.
    `holds[mechanism]`: (start, end) seconds of each hold.
    """
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    holds = holds or {}
    lengths = {
        "ours": limits["readiness_window"],
        "helm": limits["helm_timeout"],
        "plain": limits["progress_deadline"],
    }
    order = [m for m in ("ours", "helm", "plain") if m in steps]
    end = max(max(v for v in s.values()) for s in steps.values()) * 1.08
    fig, ax = plt.subplots(figsize=(10, 1.1 * len(order) + 2.4))
    handles: list[Any] = []
    for row, mechanism in enumerate(order):
        y = len(order) - 1 - row
        at = steps[mechanism]
        pod = at["first_new_pod"]
        opened = pod if mechanism == "ours" else at.get("deployment_updated", pod)
        # A hold stops the verdict's clock; when it ends the window starts afresh.
        segments: list[tuple[float, float]] = []
        for start, stop in sorted(holds.get(mechanism, [])):
            if opened < start < opened + lengths[mechanism]:
                segments.append((opened, start - opened))
                opened = max(opened, stop)
        segments.append((opened, lengths[mechanism]))
        who, what, since = WINDOWS[mechanism]
        ax.broken_barh(
            segments,
            (y - 0.42, 0.84),
            color=COLORS[mechanism],
            alpha=0.16,
            edgecolor=COLORS[mechanism],
        )
        ax.text(
            opened + 3,
            y + 0.29,
            f"{what}: {lengths[mechanism]:.0f} s",
            fontsize=7,
            color=COLORS[mechanism],
            va="center",
        )
        handles.append(
            Patch(
                facecolor=COLORS[mechanism],
                alpha=0.3,
                edgecolor=COLORS[mechanism],
                label=f"{who}: {what} ({lengths[mechanism]:.0f} s, {since})",
            )
        )
        acted = at.get("rollback_started")
        spans = {
            "starting": [(0.0, pod)],
            "held": [(pod, (acted or end) - pod)],
            "hold": [(a, b - a) for a, b in holds.get(mechanism, [])],
        }
        if acted is not None and at.get("back_on_old") is not None:
            spans["rollback"] = [(acted, at["back_on_old"] - acted)]
        for phase, ranges in spans.items():
            if ranges:
                ax.broken_barh(ranges, (y - 0.15, 0.3), color=PHASES[phase][0])
        if acted is None:
            deadline = at.get("progress_deadline_exceeded")
            if deadline is not None:
                ax.plot([deadline], [y + 0.15], marker="v", color="black", markersize=7)
                ax.text(
                    deadline - 3,
                    y - 0.29,
                    f"ProgressDeadlineExceeded at {deadline:.0f} s: "
                    "no rollback, the broken pod stays",
                    fontsize=7,
                    ha="right",
                    va="center",
                )
        else:
            done = at.get("back_on_old", acted)
            ax.text(
                done + 3,
                y - 0.29,
                f"rollback started at {acted:.0f} s, only good pods at {done:.0f} s",
                fontsize=7,
                va="center",
            )
    for phase, (color, label) in PHASES.items():
        if phase != "hold" or any(holds.values()):
            handles.append(Patch(color=color, label=label))
        else:
            handles.append(
                Patch(
                    facecolor="white",
                    edgecolor=color,
                    hatch="///",
                    label="hold (the verdict's clock stopped): none in this run",
                )
            )
    ax.set_yticks(range(len(order))[::-1], [TITLES[m] for m in order], fontsize=8)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlim(0, end)
    ax.set_xlabel("seconds since the never-ready image was applied")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


def windows(
    steps: dict[str, dict[str, float]],
    path: Path,
    limits: dict[str, float] | None = None,
    holds: dict[str, list[tuple[float, float]]] | None = None,
    title: str = "",
) -> None:
    _save(windows_figure(steps, limits, holds, title), path)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def reactions_figure(rows: list[tuple[str, str, list[float]]]) -> Figure:
    """Grouped horizontal bars, median with a whisker to the max, for rows of
    ("section: step", mechanism, seconds); one panel per section, each on its own linear axis."""
    sections: dict[str, list[tuple[str, str, list[float]]]] = {}
    for label, mechanism, values in rows:
        section, _, step = label.partition(": ")
        sections.setdefault(section, []).append((step, mechanism, values))
    heights = [len({step for step, _, _ in entries}) + 1 for entries in sections.values()]
    fig, axes = plt.subplots(
        len(sections),
        1,
        figsize=(10, 0.55 * sum(heights) + 1.6),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    shown: list[str] = []
    for ax, (section, entries) in zip(axes[:, 0], sections.items(), strict=True):
        steps = list(dict.fromkeys(step for step, _, _ in entries))
        right = max((max(v) for _, _, v in entries if v), default=1.0)
        for index, step in enumerate(steps):
            # This step's bars, centred on its row: only the mechanisms it measures.
            present = [(m, v) for s, m, v in entries if s == step]
            bar = 0.8 / len(present)
            for slot, (mechanism, values) in enumerate(present):
                if mechanism not in shown:
                    shown.append(mechanism)
                y = len(steps) - 1 - index + (len(present) - 1) / 2 * bar - slot * bar
                if not values:
                    ax.text(0, y, "  never", va="center", fontsize=8, color=COLORS[mechanism])
                    continue
                median, top = _median(values), max(values)
                ax.barh(
                    y,
                    median,
                    height=bar * 0.9,
                    color=COLORS[mechanism],
                    xerr=[[0], [top - median]],
                    capsize=3,
                )
                text = f"{median:.1f} s" + (f" (max {top:.1f})" if top - median >= 0.05 else "")
                ax.text(top + right * 0.01, y, text, va="center", fontsize=8)
        ax.set_yticks(range(len(steps))[::-1], steps, fontsize=8)
        ax.set_xlim(0, right * 1.25)
        ax.set_xlabel(f"{section}: seconds (median of the runs, whisker to the max)")
    fig.legend(
        handles=[Patch(color=COLORS[m], label=NAMES[m]) for m in shown],
        loc="upper center",
        ncol=len(shown),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def reactions(rows: list[tuple[str, str, list[float]]], path: Path) -> None:
    _save(reactions_figure(rows), path)


def operator_cost_figure(levels: list[dict[str, Any]]) -> Figure:
    """Two panels, one quantity each: RSS and idle CPU per number of ItemServices measured."""
    counts = [str(level["item_services"]) for level in levels]
    fig, (rss_axis, cpu_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title, unit in (
        (rss_axis, "rss_mib", "memory (RSS)", "MiB"),
        (cpu_axis, "cpu_percent", "idle CPU", "% of one core"),
    ):
        values = [level[key] for level in levels]
        ax.bar(counts, values, color=COLORS["ours"], width=0.6, label="the operator")
        for x, value in zip(counts, values, strict=True):
            ax.text(x, value, f"{value:g}", ha="center", va="bottom", fontsize=8)
        ax.set_title(f"operator {title}", fontsize=10)
        ax.set_xlabel("ItemServices served (each measured level)")
        ax.set_ylabel(unit)
        ax.set_ylim(0, max(values, default=1) * 1.2)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def operator_cost(levels: list[dict[str, Any]], path: Path) -> None:
    _save(operator_cost_figure(levels), path)
