"""PNG plots of a cluster benchmark run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines
import matplotlib.pyplot as plt

COLORS = {"ours": "#1b7837", "helm": "#2166ac", "plain": "#b2182b"}
TITLES = {
    "ours": "ItemService (operator)",
    "helm": "helm upgrade --atomic (default timeout)",
    "plain": "plain Deployment (default progress deadline)",
}


def timeline(episodes: list[dict[str, Any]], path: Path) -> None:
    """One broken-image episode per mechanism: ready pods of the good image, pods of the broken
    one, and failed client requests per second, against seconds since the image was changed."""
    fig, axes = plt.subplots(len(episodes), 1, figsize=(10, 2.6 * len(episodes)), sharex=True)
    for ax, episode in zip(axes, episodes, strict=True):
        t0 = episode["started"]
        # The good image's ready pods, and the broken image's pods (never ready) while present.
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
            ax.step(xs, ys, where="post", linestyle=style, color=COLORS[episode["mechanism"]],
                    label=label)
        errors = [(int(s) - t0, bad) for s, (_, bad) in episode["buckets"].items() if bad]
        if errors:
            ax.bar([x for x, _ in errors], [y for _, y in errors], width=1.0, color="black",
                   label="failed requests / s")
        rollback = episode["steps"].get("rollback_started")
        if rollback:
            ax.axvline(rollback - t0, color="grey", linestyle=":", label="rollback started")
        ax.set_title(f"{TITLES[episode['mechanism']]}: {episode['failed_requests']} failed of "
                     f"{episode['requests']} requests", fontsize=10)
        ax.set_ylabel("pods")
        ax.set_ylim(-0.2, 3.5)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("seconds since the broken image was applied")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reactions(rows: list[tuple[str, str, list[float]]], path: Path) -> None:
    """Horizontal bars: median of each (label, mechanism, values), the max as a whisker."""
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    labels = [label for label, _, _ in rows]
    medians = [sorted(v)[len(v) // 2] if v else 0 for _, _, v in rows]
    spans = [max(v) - m if v else 0 for (_, _, v), m in zip(rows, medians, strict=True)]
    colors = [COLORS[mechanism] for _, mechanism, _ in rows]
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, medians, xerr=[[0] * len(rows), spans], color=colors, capsize=3)
    for y, m, span in zip(positions, medians, spans, strict=True):
        label = f"{m:.1f} s" + (f" (max {m + span:.1f})" if span >= 0.05 else "")
        ax.text((m + span) * 1.08 + 0.05, y, label, va="center", fontsize=8)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, max((m + span for m, span in zip(medians, spans, strict=True)),
                       default=10) * 5)
    ax.set_xlabel("seconds (median, whisker to max; log scale above 10 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def operator_cost(levels: list[dict[str, Any]], path: Path) -> None:
    counts = [level["item_services"] for level in levels]
    fig, rss_axis = plt.subplots(figsize=(7, 3.5))
    rss_axis.plot(counts, [level["rss_mib"] for level in levels], "o-", color=COLORS["ours"],
                  label="RSS (MiB)")
    rss_axis.set_xlabel("ItemServices served")
    rss_axis.set_ylabel("operator RSS (MiB)")
    rss_axis.set_ylim(bottom=0)
    cpu_axis = rss_axis.twinx()
    cpu_axis.plot(counts, [level["cpu_percent"] for level in levels], "s--", color="grey",
                  label="idle CPU (% of a core)")
    cpu_axis.set_ylabel("idle CPU (% of one core)")
    cpu_axis.set_ylim(bottom=0)
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
