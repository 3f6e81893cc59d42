"""Issue 14's benchmark, without a cluster: the fault images' wrappers answer what they claim,
each failure class's clock and verdict are read from the right events, the goals are judged
as documented, and the plot has one labelled quantity per axis."""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.cluster import classes, report_classes
from bench.cluster.analysis import Workload, item_service_analysis
from bench.cluster.episodes import Episode
from bench.cluster.recorder import Observation, summarize_item_service, summarize_pod

FAULTS = Path(__file__).resolve().parents[1] / "operator/cluster/images/bench_faults.py"
W = Workload("bench-ours", "ours-1")
OLD, NEW, T0 = "v2", "broken", 1_000.0


def _faults() -> Any:
    spec = importlib.util.spec_from_file_location("bench_faults", FAULTS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _status(app: Any, path: str) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    asyncio.run(app({"type": "http", "path": path}, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent  # one response, whatever the fault did
    assert [m for m in sent if m["type"] == "http.response.body"][-1].get("more_body") in (
        None,
        False,
    )
    return int(starts[0]["status"])


@pytest.mark.parametrize(
    ("draw", "path", "status"),
    [(0.1, "/items/1", 500), (0.3, "/items/1", 200), (0.1, "/readyz", 200)],
)
def test_5xx_fault_fails_only_its_share_of_items_requests(
    draw: float, path: str, status: int
) -> None:
    app = _faults().failing_share(_ok, 0.2, lambda: draw)
    assert _status(app, path) == status


def test_readiness_blips_once_after_the_first_200() -> None:
    now = [0.0]
    app = _faults().blipping(_ok, 1.0, 8.0, clock=lambda: now[0])
    seen = []
    for t in (0.0, 0.5, 1.0, 5.0, 8.9, 9.0, 30.0):
        now[0] = t
        seen.append(_status(app, "/readyz"))
    assert seen == [200, 200, 503, 503, 503, 200, 200]
    now[0] = 2.0  # a request elsewhere is never touched
    assert _status(app, "/items/1") == 200


def _obs(at: float, kind: str, fields: dict[str, Any], name: str = "ours-1") -> Observation:
    return Observation(T0 + at, kind, "MODIFIED", W.namespace, name, fields)


def _pod(at: float, image: str, **state: Any) -> Observation:
    fields = {
        "instance": W.name,
        "component": "server",
        "image": image,
        "ready": False,
        "deleting": False,
        "started": False,
        **state,
    }
    return _obs(at, "Pod", fields, name=f"pod-{image}")


def _deployment(at: float, image: str) -> Observation:
    fields = {
        "image": image,
        "replicas": 2,
        "updated": 2,
        "ready": 2,
        "available": 2,
        "total": 2,
        "progressing": "",
        "current": True,
    }
    return _obs(at, "Deployment", fields, name=W.name)


def test_crash_loop_clock_starts_at_the_first_container_start_and_stops_at_the_verdict() -> None:
    obs = [
        _deployment(0.5, NEW),
        _pod(1.0, NEW),
        _pod(4.0, NEW, started=True),
        _obs(
            6.0,
            "ItemService",
            {"phase": "RolledBack", "reason": "CrashLoopBackOff", "target": NEW, "current": True},
        ),
        _deployment(6.2, OLD),
    ]
    steps, reason = classes.class_steps(obs, classes.CLASSES["crashloop"], "ours", W, OLD, NEW, T0)
    assert steps["first_failing"] == T0 + 4.0
    assert steps["rollback_started"] == T0 + 6.0  # the status came first
    assert reason == "CrashLoopBackOff"


def test_the_never_ready_clock_is_the_kubelet_s_stamp_when_its_event_comes_late() -> None:
    """The operator's window runs from the kubelet's whole-second stamp of the start; on a busy
    node the pod's event arrives seconds later, which would shorten the measured reaction."""
    obs = [
        _deployment(0.5, NEW),
        _pod(1.0, NEW),
        _pod(7.4, NEW, started=True, started_at=T0 + 3.0),
        _obs(
            23.1,
            "ItemService",
            {"phase": "RolledBack", "reason": "ReadinessTimeout", "target": NEW, "current": True},
        ),
    ]
    failure = classes.CLASSES["never-ready"]
    steps, _ = classes.class_steps(obs, failure, "ours", W, OLD, NEW, T0)
    assert steps["first_failing"] == T0 + 3.0
    # An event earlier than the stamp (none should be) and a stamp before the episode: bounded.
    early = [_pod(2.0, NEW, started=True, started_at=T0 + 2.9), *obs]
    assert classes.class_steps(early, failure, "ours", W, OLD, NEW, T0)[0]["first_failing"] == (
        T0 + 2.0
    )
    stale = [_pod(2.0, NEW, started=True, started_at=T0 - 5), *obs]
    assert classes.class_steps(stale, failure, "ours", W, OLD, NEW, T0)[0]["first_failing"] == T0


def test_the_recorder_keeps_the_earliest_start_stamp_of_the_first_container() -> None:
    body = {
        "metadata": {"labels": {"app.kubernetes.io/instance": "ours-1"}},
        "spec": {"containers": [{"image": NEW}]},
        "status": {
            "containerStatuses": [
                {
                    "ready": False,
                    "restartCount": 1,
                    "state": {"running": {"startedAt": "2026-12-02T10:00:09Z"}},
                    "lastState": {"terminated": {"startedAt": "2026-12-02T10:00:03Z"}},
                }
            ]
        },
    }
    summary = summarize_pod(body)
    assert summary["started"] is True
    assert summary["started_at"] == datetime(2026, 12, 2, 10, 0, 3, tzinfo=UTC).timestamp()
    del body["status"]["containerStatuses"]  # type: ignore[attr-defined]
    assert summarize_pod(body)["started_at"] is None


def test_helm_rollback_starts_with_its_release_record() -> None:
    record = {"instance": W.name, "status": "pending-rollback", "version": "4"}
    obs = [_pod(2.0, NEW), _obs(62.0, "HelmRelease", record, name="sh.helm.release.v1.x.v4")]
    steps, _ = classes.class_steps(obs, classes.CLASSES["unpullable"], "helm", W, OLD, NEW, T0)
    assert steps["first_failing"] == T0 + 2.0
    assert steps["rollback_started"] == T0 + 62.0
    plain, _ = classes.class_steps(obs, classes.CLASSES["unpullable"], "plain", W, OLD, NEW, T0)
    assert plain["rollback_started"] is None  # only Helm's record counts for Helm


def _episode(mechanism: str, react: float | None, **extra: Any) -> Episode:
    steps = {
        "first_failing": T0 + 5.0,
        "rollback_started": None if react is None else T0 + 5 + react,
    }
    return Episode(mechanism, "never-ready", W, OLD, NEW, T0, ended=T0 + 100, steps=steps, **extra)


def test_goals_are_judged_as_documented() -> None:
    assert report_classes.goal("crashloop", _episode("ours", 1)) == 10
    assert report_classes.goal("never-ready", _episode("ours", 1, previous_time_to_ready=4)) == 20
    assert report_classes.goal("never-ready", _episode("ours", 1, previous_time_to_ready=9)) == 27
    assert report_classes.goal("5xx", _episode("ours", 1)) == 60
    assert report_classes.goal_verdict(
        "oom", [_episode("ours", 3), _episode("ours", 4), _episode("ours", 30)]
    ).startswith("met")
    within = [
        _episode("ours", 21, previous_time_to_ready=5),
        _episode("ours", 19, previous_time_to_ready=5),
    ]
    assert report_classes.goal_verdict("never-ready", within) == "1 of 2 within 20 s"
    assert "never rolled back" in report_classes.goal_verdict("5xx", [_episode("ours", None)])


def test_reaction_table_says_how_long_a_mechanism_that_never_acts_was_watched() -> None:
    results = {"never-ready": [_episode("ours", 20.0), _episode("plain", None)]}
    table = report_classes.reaction_table(results)
    assert "20.0 / 20.0" in table
    assert "never (not waited past 95 s)" in table
    medians = report_classes.class_medians(results)
    assert medians["never-ready"]["plain"] == {
        "median": None,
        "max": None,
        "episodes": 1,
        "never": 1,
        "waited": 95.0,
    }


def test_class_plot_has_a_labelled_log_axis_and_a_legend_for_every_mechanism(
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib")
    from bench.cluster import plots_classes

    medians: dict[str, dict[str, dict[str, Any]]] = {
        "crashloop": {
            "ours": {"median": 4.0, "max": 6.0, "never": 0, "waited": 10.0},
            "helm": {"median": 300.0, "max": 301.0, "never": 0, "waited": 310.0},
            "helm-eq": {"median": 21.0, "max": 22.0, "never": 0, "waited": 30.0},
            "plain": {"median": None, "max": None, "never": 1, "waited": 320.0},
        }
    }
    fig = plots_classes.classes_figure(medians, {"crashloop": 10.0})
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert "log scale" in ax.get_ylabel()
    assert "seconds" in ax.get_ylabel()
    labels = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert len(labels) == len(classes.MECHANISMS) + 2  # + never, + the goal
    assert "helm upgrade --atomic (default timeout, 300 s)" in labels
    plots_classes.classes(medians, {"crashloop": 10.0}, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_a_blip_counts_only_a_pod_that_was_ready_and_only_before_the_release_was_proven() -> None:
    from bench.cluster import analysis

    obs = [
        _pod(1.0, NEW),  # starting: unready, never ready yet
        _pod(3.0, NEW, ready=True),
        _pod(8.0, NEW),  # the blip
        _pod(12.0, NEW, ready=True),
        _pod(30.0, NEW, deleting=True),  # terminating is not a blip
    ]
    assert analysis.readiness_blips(obs, W, NEW, T0, before=None) == 1
    assert analysis.readiness_blips(obs, W, NEW, T0, before=T0 + 5) == 0
    assert analysis.readiness_blips(obs[:2] + obs[4:], W, NEW, T0, before=None) == 0


_pod_events = st.lists(
    st.tuples(
        st.sampled_from(["Pod", "Deployment"]),
        st.sampled_from([OLD, NEW]),
        st.booleans(),
        st.sampled_from(["a", "b", "c"]),
        st.booleans(),
    ),
    max_size=12,
)


@given(_pod_events)
def test_settled_now_means_it_settled_at_some_event(events: list[tuple[Any, ...]]) -> None:
    """The state after the last event is what settled_on sees at that event: whenever the
    workload is settled now, settled_on found a moment it was."""
    from bench.cluster import analysis

    obs = []
    for at, (kind, image, ready, pod, deleted) in enumerate(events):
        if kind == "Deployment":
            obs.append(_deployment(float(at), image))
        else:
            o = _pod(float(at), image, ready=ready)
            obs.append(
                Observation(
                    o.at, "Pod", "DELETED" if deleted else "MODIFIED", o.namespace, pod, o.fields
                )
            )
    for image in (OLD, NEW):
        if analysis.settled_now(obs, W, image):
            assert analysis.settled_on(obs, W, image, 0.0) is not None


def test_ours_canary_analysis_outcome_is_kept_from_its_status() -> None:
    """The status's newest history entry carries the analysis' outcome; the bench keeps the
    first one recorded for the class's image (why a 5xx release was not rolled back)."""
    body = {
        "metadata": {"name": W.name, "generation": 3},
        "status": {
            "phase": "Available",
            "targetImage": NEW,
            "observedGeneration": 3,
            "history": [{"outcome": "Available", "analysis": "inconclusive (too few requests): x"}],
        },
    }
    fields = summarize_item_service(body)
    assert fields["analysis"] == "inconclusive (too few requests): x"
    before = Observation(T0 - 1, "ItemService", "MODIFIED", W.namespace, W.name, fields)
    old_release = Observation(
        T0 + 1, "ItemService", "MODIFIED", W.namespace, W.name, {**fields, "target": OLD}
    )
    later = Observation(T0 + 2, "ItemService", "MODIFIED", W.namespace, W.name, fields)
    found = item_service_analysis([before, old_release, later], W, NEW, T0)
    assert found == "inconclusive (too few requests): x"
    assert item_service_analysis([before, old_release], W, NEW, T0) is None
