"""Pure reading of recorded watch events: when did each step of an episode happen.

Every function takes the observations of one run and returns times (time.time() seconds) or
None when the step never happened; episodes turn them into durations.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.cluster.recorder import Observation

Predicate = Callable[[Observation], bool]


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str  # Deployment name = app.kubernetes.io/instance of its pods and Jobs


def first_event(
    observations: Iterable[Observation], when: Predicate, after: float
) -> Observation | None:
    return next((o for o in observations if o.at >= after and when(o)), None)


def first(observations: Iterable[Observation], when: Predicate, after: float) -> float | None:
    found = first_event(observations, when, after)
    return found.at if found is not None else None


def _of(w: Workload, kind: str) -> Predicate:
    def matches(o: Observation) -> bool:
        if o.kind != kind or o.namespace != w.namespace:
            return False
        if kind in ("Deployment", "ItemService"):
            return o.name == w.name
        return bool(o.fields.get("instance") == w.name)

    return matches


def job_created(obs: list[Observation], w: Workload, image: str, after: float) -> float | None:
    job = _of(w, "Job")
    return first(obs, lambda o: job(o) and o.fields["image"] == image, after)


def job_succeeded(obs: list[Observation], w: Workload, image: str, after: float) -> float | None:
    job = _of(w, "Job")
    return first(
        obs, lambda o: job(o) and o.fields["image"] == image and o.fields["succeeded"], after
    )


def deployment_on(obs: list[Observation], w: Workload, image: str, after: float) -> float | None:
    """First time the Deployment's pod template names `image`."""
    dep = _of(w, "Deployment")
    return first(obs, lambda o: dep(o) and o.fields["image"] == image, after)


def first_pod(obs: list[Observation], w: Workload, image: str, after: float) -> float | None:
    pod = _of(w, "Pod")
    return first(
        obs,
        lambda o: pod(o) and o.fields["component"] == "server" and o.fields["image"] == image,
        after,
    )


def progress_deadline_exceeded(obs: list[Observation], w: Workload, after: float) -> float | None:
    dep = _of(w, "Deployment")
    return first(
        obs, lambda o: dep(o) and o.fields["progressing"] == "ProgressDeadlineExceeded", after
    )


def pod_counts(
    obs: list[Observation], w: Workload, start: float, end: float
) -> list[tuple[float, dict[str, tuple[int, int]]]]:
    """(time, {image: (server pods present, of them ready)}) after every pod event of the
    workload from `start` to `end`: a step series for the timeline plots."""
    pod = _of(w, "Pod")
    state: dict[str, tuple[str, bool]] = {}
    series: list[tuple[float, dict[str, tuple[int, int]]]] = []
    for o in obs:
        if not pod(o) or o.fields["component"] != "server" or o.at > end:
            continue
        if o.event == "DELETED":
            state.pop(o.name, None)
        else:
            state[o.name] = (o.fields["image"], o.fields["ready"] and not o.fields["deleting"])
        if o.at >= start:
            counts: dict[str, tuple[int, int]] = {}
            for image, ready in state.values():
                present, ready_count = counts.get(image, (0, 0))
                counts[image] = (present + 1, ready_count + int(ready))
            series.append((o.at, counts))
    return series


def _settle_states(obs: list[Observation], w: Workload, image: str) -> Iterator[tuple[float, bool]]:
    """After each Deployment or server-pod event of `w`: its time, and whether every replica then
    runs `image`, ready and available, with no server pod of another image left (deleted, not
    just terminating)."""
    dep_of, pod_of = _of(w, "Deployment"), _of(w, "Pod")
    deployment: dict[str, Any] | None = None
    others: set[str] = set()
    for o in obs:
        if dep_of(o):
            deployment = o.fields
        elif pod_of(o) and o.fields["component"] == "server":
            if o.event == "DELETED" or o.fields["image"] == image:
                others.discard(o.name)
            else:
                others.add(o.name)
        else:
            continue
        d = deployment
        yield (
            o.at,
            bool(
                d is not None
                and not others
                and d["image"] == image
                and d["current"]
                and d["updated"] == d["ready"] == d["available"] == d["total"] == d["replicas"]
            ),
        )


def settled_on(obs: list[Observation], w: Workload, image: str, after: float) -> float | None:
    """First time, after `after`, that `w` is settled on `image` (_settle_states)."""
    states = _settle_states(obs, w, image)
    return next((at for at, settled in states if settled and at >= after), None)


def first_pod_where(
    obs: list[Observation],
    w: Workload,
    image: str,
    after: float,
    *,
    state: str = "created",
    any_component: bool = False,
) -> float | None:
    """First event of a pod of `image` in `state`: created (any event), started (its container
    has run: the kubelet's stamp of the start when it is earlier than the event), ready.
    Server pods only, unless `any_component` (a migration pod counts too)."""
    pod = _of(w, "Pod")

    def matches(o: Observation) -> bool:
        f = o.fields
        if not pod(o) or f["image"] != image:
            return False
        if not any_component and f["component"] != "server":
            return False
        if state == "started":
            return bool(f.get("started"))
        if state == "ready":
            return bool(f["ready"])
        return True

    if state != "started":
        return first(obs, matches, after)
    found = first_event(obs, matches, after)
    if found is None:
        return None
    stamp = found.fields.get("started_at")
    return max(after, min(found.at, stamp)) if isinstance(stamp, float) else found.at


GAVE_UP_PHASES = ("RolledBack", "Failed")


def item_service_analysis(
    obs: list[Observation], w: Workload, image: str, after: float
) -> str | None:
    """The first canary-analysis outcome the ItemService's status recorded for `image`."""
    mine = _of(w, "ItemService")
    return next(
        (
            str(o.fields["analysis"])
            for o in obs
            if o.at >= after
            and mine(o)
            and o.fields.get("target") == image
            and o.fields.get("analysis")
        ),
        None,
    )


def item_service_gave_up(
    obs: list[Observation], w: Workload, image: str, after: float
) -> Observation | None:
    """The ItemService's status first saying the release of `image` was rolled back or failed
    (a release whose migration failed is never rolled out: nothing to roll back)."""
    mine = _of(w, "ItemService")
    return next(
        (
            o
            for o in obs
            if o.at >= after
            and mine(o)
            and o.fields["target"] == image
            and o.fields["phase"] in GAVE_UP_PHASES
        ),
        None,
    )


def item_service_available(
    obs: list[Observation], w: Workload, image: str, after: float
) -> float | None:
    mine = _of(w, "ItemService")
    return first(
        obs,
        lambda o: (
            mine(o)
            and o.fields["target"] == image
            and o.fields["phase"] == "Available"
            and o.fields["current"]
        ),
        after,
    )


def helm_rollback(obs: list[Observation], w: Workload, after: float) -> float | None:
    """Helm's rollback record (status pending-rollback): written before the rollback acts."""
    record = _of(w, "HelmRelease")
    return first(obs, lambda o: record(o) and o.fields["status"] == "pending-rollback", after)


def readiness_blips(
    obs: list[Observation], w: Workload, image: str, after: float, before: float | None
) -> int:
    """Server pods of `image` that were ready, lost readiness (alive, not terminating), and
    did so before `before` (the release proven; None: whenever)."""
    pod = _of(w, "Pod")
    was_ready: set[str] = set()
    blipped: set[str] = set()
    for o in obs:
        if o.at < after or not pod(o) or o.fields["image"] != image:
            continue
        if before is not None and o.at > before:
            break
        if o.fields["ready"]:
            was_ready.add(o.name)
        elif o.name in was_ready and not o.fields["deleting"] and o.event != "DELETED":
            blipped.add(o.name)
    return len(blipped)


def settled_now(obs: list[Observation], w: Workload, image: str) -> bool:
    """As settled_on, for the last state recorded."""
    last = collections.deque(_settle_states(obs, w, image), maxlen=1)
    return bool(last) and last[0][1]
