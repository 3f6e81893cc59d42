"""The failure classes at a glance: per class, one bar per mechanism, the seconds from the first
failing pod to rollback started (median, whisker to the max), on a labelled log axis (seconds
and Helm's 300 s differ a hundredfold); a mechanism that never rolled back is a hatched bar up
to how long it was watched. Ours' goal is a black tick over its bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.cluster.classes import MECHANISMS

COLORS = {"ours": "#1b7837", "helm": "#2166ac", "helm-eq": "#92c5de", "plain": "#b2182b"}
NAMES = {
    "ours": "ItemService (operator, CRD defaults)",
    "helm": "helm upgrade --atomic (default timeout)",
    "helm-eq": "helm upgrade --atomic --timeout = ours' window",
    "plain": "plain Deployment (never rolls back)",
}


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def classes_figure(
    medians: dict[str, dict[str, dict[str, Any]]],
    goals: dict[str, float],
    title: str = "",
    helm_timeout: float = 300,
) -> Figure:
    names = list(medians)
    fig, ax = plt.subplots(figsize=(11, 5.8))
    tallest = 1.0
    width = 0.8 / len(MECHANISMS)
    for c, name in enumerate(names):
        for m, mechanism in enumerate(MECHANISMS):
            cell = medians[name].get(mechanism)
            if cell is None:
                continue
            x = c - 0.4 + width * (m + 0.5)
            if cell["median"] is None:
                height = max(cell.get("waited") or 1.0, 1.0)
                tallest = max(tallest, height)
                ax.bar(
                    x, height, width * 0.9, color="white", edgecolor=COLORS[mechanism], hatch="///"
                )
                ax.text(x, height * 1.08, f"never\n(>{height:.0f})", ha="center", fontsize=6.5)
                continue
            median, top = max(cell["median"], 0.1), max(cell["max"], 0.1)
            tallest = max(tallest, top)
            ax.bar(
                x,
                median,
                width * 0.9,
                color=COLORS[mechanism],
                yerr=[[0], [top - median]],
                capsize=2,
            )
            ax.text(x, top * 1.08, _seconds(cell["median"]), ha="center", fontsize=7)
            if mechanism == "ours" and name in goals:
                ax.hlines(goals[name], x - width / 2, x + width / 2, color="black", linewidth=2)
    ax.set_yscale("log")
    ax.set_ylim(top=tallest * 3)
    ax.set_ylabel("seconds, first failing pod → rollback started (log scale)")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel(
        "failure class (clock starts: pull error at pod creation, crash/OOM/never-ready at "
        "the container's start, 5xx at first Ready)",
        fontsize=8,
    )
    ax.grid(axis="y", which="both", alpha=0.25)
    names_now = {**NAMES, "helm": f"helm upgrade --atomic (default timeout, {helm_timeout:.0f} s)"}
    handles: list[Any] = [Patch(color=COLORS[m], label=names_now[m]) for m in MECHANISMS]
    handles += [
        Patch(
            facecolor="white",
            edgecolor="grey",
            hatch="///",
            label="never rolled back (bar: how long it was watched)",
        ),
        Line2D([], [], color="black", linewidth=2, label="ours' goal for the class"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=3, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def classes(
    medians: dict[str, dict[str, dict[str, Any]]],
    goals: dict[str, float],
    path: Path,
    title: str = "",
    helm_timeout: float = 300,
) -> None:
    fig = classes_figure(medians, goals, title, helm_timeout)
    fig.savefig(path, dpi=110)
    plt.close(fig)
