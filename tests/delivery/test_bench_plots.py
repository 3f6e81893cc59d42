"""The benchmark pictures read at a glance: every axis linear with one quantity, a legend for the
colours, and on the rollback timeline the window each mechanism waits before it acts. Needs the
bench group (`uv sync --group bench`); skipped without matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from bench.cluster import plots

T0 = 1_000.0


def episode(mechanism: str, **steps: float) -> dict[str, Any]:
    return {
        "mechanism": mechanism,
        "started": T0,
        "old": "v1",
        "new": "broken",
        "pods_before": {"v1": (2, 2)},
        "pod_series": [(T0 + 10, {"v1": (2, 2), "broken": (1, 0)}), (T0 + 140, {"v1": (2, 2)})],
        "plot_end": T0 + 160,
        "buckets": {str(int(T0 + 12)): [5, 1]},
        "failed_requests": 1,
        "requests": 100,
        "steps": {key: T0 + value for key, value in steps.items()},
    }


def test_timeline_shades_each_mechanisms_wait_and_keeps_axes_linear(tmp_path: Path) -> None:
    episodes = [
        episode("ours", first_new_pod=10, rollback_started=131),
        episode("helm", rollback_started=301),
        episode("plain"),
    ]
    fig = plots.timeline_figure(episodes, {"readiness_window": 120})
    spans = []
    for ax in fig.axes:
        assert ax.get_xscale() == "linear"
        assert ax.get_yscale() == "linear"
        assert ax.get_ylabel() == "pods"
        assert ax.get_legend() is not None
        spans += [str(p.get_label()) for p in ax.patches]
    assert any("readiness window (120 s" in label for label in spans)
    assert any("helm --timeout (300 s)" in label for label in spans)
    assert any("progressDeadlineSeconds (600 s)" in label for label in spans)
    plots.timeline(episodes, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_reaction_times_use_one_linear_panel_per_section(tmp_path: Path) -> None:
    rows = [
        ("upgrade: total", "ours", [15.0, 16.0, 17.0]),
        ("upgrade: total", "helm", [14.0]),
        ("broken image: rollback started", "ours", [132.0]),
        ("broken image: rollback started", "helm", [323.0]),
        ("broken image: deadline", "plain", [601.0]),
    ]
    fig = plots.reactions_figure(rows)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xscale() == "linear"
        assert "seconds" in ax.get_xlabel()
    legend_texts = {text.get_text() for legend in fig.legends for text in legend.get_texts()}
    assert legend_texts == {plots.NAMES[m] for m in ("ours", "helm", "plain")}
    plots.reactions(rows, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_operator_cost_has_one_quantity_per_panel() -> None:
    levels = [
        {"item_services": n, "rss_mib": r, "cpu_percent": c}
        for n, r, c in ((1, 67, 0.08), (50, 79, 0.44), (200, 104, 1.81))
    ]
    fig = plots.operator_cost_figure(levels)
    assert [ax.get_ylabel() for ax in fig.axes] == ["MiB", "% of one core"]
    assert all(ax.get_yscale() == "linear" for ax in fig.axes)


def test_windows_shade_each_wait_and_place_the_phases_on_one_linear_axis(tmp_path: Path) -> None:
    steps = {
        "ours": {"first_new_pod": 11.4, "rollback_started": 132.0, "back_on_old": 138.2},
        "helm": {"first_new_pod": 22.6, "rollback_started": 322.9, "back_on_old": 330.0},
        "plain": {"first_new_pod": 0.9, "progress_deadline_exceeded": 601.5},
    }
    fig = plots.windows_figure(steps, holds={"ours": [(40.0, 70.0)]})
    [ax] = fig.axes
    assert ax.get_xscale() == "linear"
    assert ax.get_xlabel() == "seconds since the never-ready image was applied"
    labels = {text.get_text() for legend in fig.legends for text in legend.get_texts()}
    assert {
        "operator: readiness window (120 s, from the first new pod)",
        "Helm: --timeout (300 s, after the hook Job)",
        "plain Deployment: progressDeadlineSeconds (600 s, from the rollout)",
    } <= labels
    assert {label for _, label in plots.PHASES.values()} <= labels
    # The operator's window starts at its first new pod; the hold cuts it, and a whole window
    # starts when the hold ends.
    cut, fresh = (path.get_extents() for path in ax.collections[0].get_paths())
    assert (cut.x0, cut.x1) == pytest.approx((11.4, 40.0))
    assert (fresh.x0, fresh.x1) == pytest.approx((70.0, 190.0))
    plots.windows(steps, tmp_path / "w.png")
    assert (tmp_path / "w.png").stat().st_size > 1000


def test_windows_medians_come_from_the_runs_episodes() -> None:
    from bench.cluster.figures import broken_medians

    def broken(mechanism: str, name: str, **steps: float) -> dict[str, Any]:
        return {
            "mechanism": mechanism,
            "kind": "broken",
            "workload": f"ns/{name}",
            "old": "v1",
            "new": "broken",
            "started": T0,
            "steps": {key: T0 + value for key, value in steps.items()},
        }

    results = {
        "broken": [
            broken("ours", "a", first_new_pod=10, rollback_started=130),
            broken("ours", "b", first_new_pod=12, rollback_started=134),
            broken("plain", "c", first_new_pod=1),
        ]
    }
    assert broken_medians(results) == {
        "ours": {"first_new_pod": 11.0, "rollback_started": 132.0},
        "plain": {"first_new_pod": 1.0},
    }
    given = {"ours": {"first_new_pod": 11.4}}
    assert broken_medians({"broken_medians": given}) == given
