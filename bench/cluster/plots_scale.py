"""The operator's cost against the number of ItemServices it serves (issue 13): one quantity per
panel (RSS, API reads per ItemService per minute in a steady period), markers at each measured
level, this run beside the earlier ones (the API-reading operator; the caches on Kopf's indexes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

RSS_GOAL_MIB = 150.0  # at 1,000 ItemServices (issue 13)
SERIES = (
    ("before", "reads from the API server, 60 s polls", "#b2182b", "s", "--"),
    ("kopf-index", "caches on Kopf's indexes (until 2026-12-07)", "#e08214", "^", ":"),
    ("after", "caches on our own informers (the default now)", "#1b7837", "o", "-"),
)


def reads_per_minute(level: dict[str, Any]) -> float:
    """API reads per ItemService per minute of the steady window (Lease requests not counted)."""
    minutes = max(float(level["window_seconds"]) / 60.0, 1e-9)
    return float(level["reads"]) / max(int(level["item_services"]), 1) / minutes


def scale_figure(series: dict[str, list[dict[str, Any]]], subtitle: str) -> Figure:
    fig, (rss_axis, reads_axis) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for key, label, color, marker, style in SERIES:
        levels = sorted(series.get(key) or [], key=lambda level: int(level["item_services"]))
        if not levels:
            continue
        counts = [int(level["item_services"]) for level in levels]
        rss_axis.plot(
            counts,
            [float(level["rss_mib"]) for level in levels],
            marker=marker,
            linestyle=style,
            color=color,
            label=label,
        )
        reads_axis.plot(
            counts,
            [reads_per_minute(level) for level in levels],
            marker=marker,
            linestyle=style,
            color=color,
            label=label,
        )
    rss_axis.axhline(RSS_GOAL_MIB, color="black", linewidth=0.8, linestyle=":")
    rss_axis.text(
        1,
        RSS_GOAL_MIB,
        "goal at 1,000: 150 MiB ",
        va="bottom",
        ha="right",
        fontsize=7,
        transform=rss_axis.get_yaxis_transform(),
    )
    for ax, title, unit in (
        (rss_axis, "operator memory (RSS)", "MiB"),
        (reads_axis, "API reads in a steady period", "reads per ItemService per minute"),
    ):
        # Linear: memory grows per ItemService, so the slope is the marginal cost.
        ax.set_xlim(left=0, right=ax.get_xlim()[1] * 1.05)
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ItemServices served")
        ax.set_ylabel(unit)
        ax.legend(loc="lower right" if ax is rss_axis else "upper right", fontsize=7)
    rss_axis.set_ylim(top=max(RSS_GOAL_MIB * 1.3, rss_axis.get_ylim()[1]))
    fig.suptitle(subtitle, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def scale(series: dict[str, list[dict[str, Any]]], path: Path, subtitle: str) -> None:
    fig = scale_figure(series, subtitle)
    fig.savefig(path, dpi=110)
    plt.close(fig)
