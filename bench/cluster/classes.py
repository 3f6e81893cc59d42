"""The failure classes of issue 14 and the two images that must not be rolled back, and how an
episode's steps are read from the recorded events (pure: no cluster access).

Each class starts its clock at the first failing pod, defined per class by what the kubelet can
show first: a pull error needs only the pod (created), a crash or an OOM kill a container that
ran (started) — a never-ready pod too: its readiness window runs from its container's start —,
a 5xx regression a pod that serves (ready).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.cluster import analysis
from bench.cluster.analysis import Workload
from bench.cluster.recorder import Observation

MECHANISMS = ("ours", "helm", "helm-eq", "plain")


@dataclass(frozen=True)
class FailureClass:
    name: str  # as given to --classes
    title: str
    first_failing: str  # what starts the clock, for the report
    pod_state: str  # analysis.first_pod_where: created, started or ready
    any_component: bool  # the migration's pod counts (the image cannot even be pulled)
    certain: bool  # the goal is seconds, not a window


CLASSES = {
    c.name: c
    for c in (
        FailureClass(
            "unpullable",
            "unpullable image (a tag no registry has)",
            "first pod of the image created (ours, Helm: the migration's)",
            "created",
            any_component=True,
            certain=True,
        ),
        FailureClass(
            "crashloop",
            "crash loop, reported (an invalid argument: the server exits 2 at once and says so)",
            "first container start (the kubelet's stamp)",
            "started",
            any_component=False,
            certain=True,
        ),
        FailureClass(
            "crash",
            "crash loop, unreported (the server exits 1 a second after it starts)",
            "first container start (the kubelet's stamp)",
            "started",
            any_component=False,
            certain=True,
        ),
        FailureClass(
            "oom",
            "OOM at start (allocates past its memory limit before it listens)",
            "first container start (the kubelet's stamp)",
            "started",
            any_component=False,
            certain=True,
        ),
        FailureClass(
            "never-ready",
            "never ready (/readyz always 503)",
            # As for a crash: before its container runs a pod is being scheduled or started,
            # not failing its readiness (the operator's window, like the time-to-ready it is
            # learned from, runs from there); from the pod's creation: the details table.
            "first new pod's container started (the kubelet's stamp)",
            "started",
            any_component=False,
            certain=False,
        ),
        FailureClass(
            "5xx",
            "5xx regression (HTTP 500 on ~20% of /items requests, probes fine)",
            "first new pod Ready",
            "ready",
            any_component=False,
            certain=False,
        ),
    )
}

# The 5xx class needs spec.rollout.analysis (issue 14, part 3): these values are its defaults.
ANALYSIS = {
    "durationSeconds": 60,
    "maxErrorRateIncrease": 0.05,
    "maxLatencyRatio": 2.0,
    "minRequests": 30,
}


def parse_classes(text: str) -> list[FailureClass]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLASSES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}: choose from {', '.join(CLASSES)}")
    return [CLASSES[n] for n in names]


def rollback_started(
    obs: list[Observation], mechanism: str, w: Workload, old: str, new: str, t0: float
) -> tuple[float | None, str | None]:
    """When the mechanism gave the release up, and the operator's reason: the Deployment back
    on the old image; for ours also its status (a release whose migration failed is never
    rolled out: giving it up is the verdict), for Helm its rollback record."""
    updated = analysis.deployment_on(obs, w, new, t0)
    back = analysis.deployment_on(obs, w, old, updated) if updated else None
    candidates = [back]
    reason = None
    if mechanism == "ours":
        gave_up = analysis.item_service_gave_up(obs, w, new, t0)
        if gave_up is not None:
            candidates.append(gave_up.at)
            reason = gave_up.fields.get("reason")
    elif mechanism in ("helm", "helm-eq"):
        candidates.append(analysis.helm_rollback(obs, w, t0))
    found = [c for c in candidates if c is not None]
    return (min(found) if found else None), reason


def class_steps(
    obs: list[Observation],
    failure: FailureClass,
    mechanism: str,
    w: Workload,
    old: str,
    new: str,
    t0: float,
) -> tuple[dict[str, float | None], str | None]:
    """(steps as time.time() seconds, the operator's reason) of one episode."""
    first_failing = analysis.first_pod_where(
        obs, w, new, t0, state=failure.pod_state, any_component=failure.any_component
    )
    started, reason = rollback_started(obs, mechanism, w, old, new, t0)
    updated = analysis.deployment_on(obs, w, new, t0)
    steps = {
        "first_new_pod": analysis.first_pod_where(obs, w, new, t0),
        "first_failing": first_failing,
        "deployment_updated": updated,
        "rollback_started": started,
        "back_on_old": analysis.settled_on(obs, w, old, started) if started else None,
        "settled_on_new": analysis.settled_on(obs, w, new, t0),
        "progress_deadline_exceeded": analysis.progress_deadline_exceeded(obs, w, t0),
    }
    return steps, reason
