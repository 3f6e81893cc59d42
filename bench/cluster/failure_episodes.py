"""The failure classes (classes.py), one after the other; within a class the i-th workload of
every mechanism gets the class's image at (almost) the same moment, the next ones
EPISODE_STAGGER later (all 20 pods starting at once on two cores stalled the node for ~20 s,
every mechanism's clients timing out alike): ours through its
ItemService (CRD defaults: the readiness window learned from its history), Helm through
`helm upgrade --atomic` at its default timeout and at `--timeout` equal to ours' window, the
plain Deployment re-applied. A class ends when every mechanism has acted (or, for the plain
Deployment, which never does, when the others are done; in `deadline_classes` when its
ProgressDeadlineExceeded arrives), bounded; then every workload is brought back to v2.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

from items_operator.window import readiness_window, recent_times_to_ready

from bench.cluster import analysis
from bench.cluster.analysis import Workload
from bench.cluster.classes import ANALYSIS, MECHANISMS, FailureClass, class_steps
from bench.cluster.episodes import Episode, Fleet, helm_upgrade, set_image_ours
from bench.cluster.recorder import Observation, Recorder
from bench.cluster.workloads import plain_objects
from tests.cluster.kube_support import KUBECTL, Kubectl
from tests.e2e.platform import helm_binary

EPISODE_STAGGER = 8.0
# Past the slowest mechanism's own limit (Helm's timeout, the progress deadline): the hook
# Job, the rollback, and a loaded node.
MARGIN = 150.0
PROGRESS_DEADLINE = 600.0
RESTORE_TIMEOUT = 420.0
# The 5xx class: ours is over once Available this long (its analysis passed), if not rolled back.
ANALYSIS_GRACE = ANALYSIS["durationSeconds"] + 30.0


def analysis_supported() -> bool:
    """The installed CRD knows spec.rollout.analysis (else it prunes or rejects it)."""
    out = subprocess.run(
        [KUBECTL, "get", "crd", "itemservices.items.platform.dev", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for version in json.loads(out)["spec"]["versions"]:
        schema = version.get("schema", {}).get("openAPIV3Schema", {})
        rollout = schema["properties"]["spec"]["properties"].get("rollout", {})
        if "analysis" in rollout.get("properties", {}):
            return True
    return False


def ours_window(w: Workload) -> tuple[float, float | None]:
    """The readiness window the operator will use (window.py, from status.history; the status
    does not carry it) and the time-to-ready of the previous good release."""
    status = Kubectl(w.namespace).get("itemservice", w.name).get("status") or {}
    history = status.get("history") or []
    window = readiness_window(None, history).total_seconds()
    recent = recent_times_to_ready(history)  # the same entries the window reads
    return window, (float(recent[-1]) if recent else None)


def _apply_plain(fleet: Fleet, w: Workload, image: str) -> None:
    objects = plain_objects(w.name, w.namespace, fleet.specs[w.name], image)
    Kubectl(w.namespace).apply(objects["Deployment"])


def _class_image(fleet: Fleet, failure: FailureClass) -> str:
    if failure.name == "never-ready":
        return fleet.platform.images.never_ready
    return fleet.platform.faults.for_class(failure.name)


def run_class(
    fleet: Fleet,
    recorder: Recorder,
    failure: FailureClass,
    *,
    helm_timeout: float,
    wait_deadline: bool,
) -> list[Episode]:
    old, bad = fleet.platform.images.v2, _class_image(fleet, failure)
    windows = [ours_window(w) for w in fleet.workloads["ours"]]
    episodes: list[Episode] = []
    commands: dict[str, subprocess.Popen[str]] = {}

    def apply_step(index: int) -> list[Episode]:
        """The class's image to the index-th workload of every mechanism, in an order that
        rotates from step to step (no mechanism always first)."""
        window, previous = windows[index]
        shift = index % len(MECHANISMS)
        step = []
        for mechanism in (*MECHANISMS[shift:], *MECHANISMS[:shift]):
            w = fleet.workloads[mechanism][index]
            episode = Episode(mechanism, failure.name, w, old, bad, time.time())
            if mechanism == "ours":
                extra = {"rollout": {"analysis": ANALYSIS}} if failure.name == "5xx" else {}
                set_image_ours(w, bad, **extra)
                episode.limit, episode.previous_time_to_ready = window, previous
            elif mechanism in ("helm", "helm-eq"):
                timeout = helm_timeout if mechanism == "helm" else window
                commands[w.name] = helm_upgrade(
                    fleet, w, bad, "--atomic", f"--timeout={timeout:.0f}s"
                )
                episode.limit = timeout
            else:
                _apply_plain(fleet, w, bad)
            step.append(episode)
        episodes.extend(step)
        return step

    def finished(e: Episode, obs: list[Observation]) -> bool:
        w, t0 = e.workload, e.started
        if e.mechanism == "ours":
            gave_up = analysis.item_service_gave_up(obs, w, bad, t0)
            if gave_up is not None:
                updated = analysis.deployment_on(obs, w, bad, t0)
                return updated is None or analysis.settled_now(obs, w, old)
            available = analysis.item_service_available(obs, w, bad, t0)
            grace = ANALYSIS_GRACE if failure.name == "5xx" else 0.0
            return available is not None and time.time() - available > grace
        if e.mechanism in ("helm", "helm-eq"):
            command = commands[w.name]
            if command.poll() is None:
                return False
            if e.command_seconds is None:
                e.command_seconds = round(time.time() - t0, 2)
                e.command_exit = command.returncode
            return analysis.settled_now(obs, w, old) or analysis.settled_now(obs, w, bad)
        if wait_deadline:
            return analysis.progress_deadline_exceeded(obs, w, t0) is not None
        return False  # never rolls back: over when the others are

    bound = (PROGRESS_DEADLINE if wait_deadline else helm_timeout) + MARGIN
    steps = len(windows)
    deadline = time.monotonic() + (steps - 1) * EPISODE_STAGGER + bound
    # Steps go out EPISODE_STAGGER apart while the earlier ones are polled, so an episode's
    # end is when it ended, not when the last step went out.
    pending, applied, next_step = apply_step(0), 1, time.monotonic() + EPISODE_STAGGER
    while (pending or applied < steps) and time.monotonic() < deadline:
        if applied < steps and time.monotonic() >= next_step:
            pending += apply_step(applied)
            applied, next_step = applied + 1, next_step + EPISODE_STAGGER
        obs = recorder.snapshot()  # one copy per poll, shared by every episode
        pending = [e for e in pending if not finished(e, obs)]
        all_plain = all(e.mechanism == "plain" for e in pending)
        if pending and all_plain and not wait_deadline and applied == steps:
            pending = []
        for e in episodes:
            if e not in pending and e.ended is None:
                e.ended = time.time()
        time.sleep(0.5)
    for e in pending:
        print(f"{failure.name}: {e.workload.name} not over after {bound:.0f} s", flush=True)
        e.ended = time.time()
    for command in commands.values():
        if command.poll() is None:
            command.kill()
            command.wait(timeout=30)
    obs, class_end = recorder.snapshot(), time.time()
    for e in episodes:
        e.steps, e.reason = class_steps(obs, failure, e.mechanism, e.workload, old, bad, e.started)
        if e.mechanism == "ours":
            e.analysis = analysis.item_service_analysis(obs, e.workload, bad, e.started)
        if e.steps["rollback_started"] is None:
            # Still serving the bad release (the 5xx one, say) until the class is over: its
            # failed requests count as long as the others'.
            e.ended = class_end
    return episodes


def restore(fleet: Fleet, recorder: Recorder, *, clear_analysis: bool) -> None:
    """Every workload back on v2 and settled (bounded), ready for the next class; ours'
    spec.rollout.analysis removed again after the 5xx class."""
    v2 = fleet.platform.images.v2
    obs = recorder.snapshot()
    upgrades: list[tuple[Workload, subprocess.Popen[str]]] = []
    for w in fleet.workloads["ours"]:
        set_image_ours(w, v2, **({"rollout": {"analysis": None}} if clear_analysis else {}))
    for mechanism in ("helm", "helm-eq"):
        for w in fleet.workloads[mechanism]:
            if not analysis.settled_now(obs, w, v2):
                upgrades.append((w, helm_upgrade(fleet, w, v2, "--wait", "--timeout=5m")))
    for w in fleet.workloads["plain"]:
        if not analysis.settled_now(obs, w, v2):
            _apply_plain(fleet, w, v2)
    for w, command in upgrades:
        output, _ = command.communicate(timeout=RESTORE_TIMEOUT)
        if command.returncode != 0:  # e.g. left pending by a killed upgrade: roll back first
            print(f"restore {w.name}: helm upgrade failed, rolling back:\n{output}", flush=True)
            _helm_rollback(w)
            retry = helm_upgrade(fleet, w, v2, "--wait", "--timeout=5m")
            retry.communicate(timeout=RESTORE_TIMEOUT)
    every = [w for ws in fleet.workloads.values() for w in ws]
    deadline = time.monotonic() + RESTORE_TIMEOUT
    while time.monotonic() < deadline:
        obs = recorder.snapshot()
        left = [w for w in every if not _restored(obs, w, v2)]
        if not left:
            return
        time.sleep(1)
    raise TimeoutError(f"not back on {v2} after {RESTORE_TIMEOUT} s: {[w.name for w in left]}")


def _restored(obs: list[Observation], w: Workload, v2: str) -> bool:
    if not analysis.settled_now(obs, w, v2):
        return False
    states = [o for o in obs if o.kind == "ItemService" and o.namespace == w.namespace]
    mine = [o for o in states if o.name == w.name]
    return not mine or (mine[-1].fields["phase"] == "Available" and mine[-1].fields["current"])


def _helm_rollback(w: Workload) -> None:
    subprocess.run(
        [helm_binary(), "rollback", w.name, "--namespace", w.namespace, "--wait", "--timeout=5m"],
        capture_output=True,
        timeout=RESTORE_TIMEOUT,
        check=False,
    )


def run_classes(
    fleet: Fleet,
    recorder: Recorder,
    classes: list[FailureClass],
    *,
    helm_timeout: float,
    deadline_classes: set[str],
    on_class: Callable[[dict[str, list[Episode]]], None] | None = None,
) -> dict[str, list[Episode]]:
    """Each class in turn, every workload back on v2 after it; `on_class` saves what is
    measured so far."""
    results: dict[str, list[Episode]] = {}
    for failure in classes:
        print(f"failure class {failure.name}: every mechanism side by side", flush=True)
        started = time.monotonic()
        results[failure.name] = run_class(
            fleet,
            recorder,
            failure,
            helm_timeout=helm_timeout,
            wait_deadline=failure.name in deadline_classes,
        )
        restore(fleet, recorder, clear_analysis=failure.name == "5xx")
        print(f"failure class {failure.name}: {time.monotonic() - started:.0f} s", flush=True)
        if on_class is not None:
            on_class(results)
    return results
