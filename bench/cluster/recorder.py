"""Watch streams that timestamp what happens to Pods, Jobs, Deployments, ItemServices and
Helm release records.

Kubernetes object timestamps have one-second resolution, too coarse for reaction times of a
second or two, so the benchmark records the local time at which each watch event arrives.
Only the fields the analysis reads are kept (see the `summarize_*` functions). One stamp is
kept besides: when the kubelet says a pod's container started (`started_at`), the clock the
operator's readiness window runs on; on a busy node its watch event arrives seconds later.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from items_operator.containers import parse_time
from items_operator.kube import ItemServiceResource
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret

# A watch is re-opened at least this often, so leaving the context takes about this long.
WATCH_WINDOW_SECONDS = 5


@dataclass(frozen=True)
class Observation:
    at: float  # time.time() when the event arrived
    kind: str
    event: str  # ADDED, MODIFIED, DELETED
    namespace: str
    name: str
    fields: dict[str, Any]


def _first_image(body: dict[str, Any], path: tuple[str, ...]) -> str:
    node: Any = body
    for key in path:
        node = (node or {}).get(key)
    containers = (node or {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c.get("status", ""), c.get("reason", ""))
        for c in status.get("conditions") or []
    }


def _stamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        found = parse_time(text)  # the operator's own reading of these stamps
    except ValueError:
        return None
    return found.timestamp() if found is not None else None


def container_started_at(status: Mapping[str, Any]) -> float | None:
    """The kubelet's stamp (whole seconds, truncated) of the earliest start it still reports of
    the first container: the last run's when it restarted, since the first run is forgotten."""
    states = [status.get("state") or {}, status.get("lastState") or {}]
    stamps = [
        _stamp((state.get(key) or {}).get("startedAt"))
        for state in states
        for key in ("running", "terminated")
    ]
    found = [s for s in stamps if s is not None]
    return min(found) if found else None


def summarize_pod(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return {
        "instance": (body["metadata"].get("labels") or {}).get("app.kubernetes.io/instance"),
        "component": (body["metadata"].get("labels") or {}).get("app.kubernetes.io/component"),
        "image": _first_image(body, ("spec",)),
        "phase": status.get("phase"),
        "ready": bool(statuses) and all(s.get("ready") for s in statuses),
        "deleting": "deletionTimestamp" in body["metadata"],
        # The first container has run (running now, or exited at least once).
        "started": any(
            "running" in (s.get("state") or {})
            or "terminated" in (s.get("state") or {})
            or (s.get("restartCount") or 0) > 0
            for s in statuses[:1]
        ),
        "started_at": container_started_at(statuses[0]) if statuses else None,
    }


def summarize_job(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    conditions = _conditions(status)
    return {
        "instance": (body["metadata"].get("labels") or {}).get("app.kubernetes.io/instance"),
        "image": _first_image(body, ("spec", "template", "spec")),
        "succeeded": (status.get("succeeded") or 0) > 0
        or conditions.get("Complete", ("",))[0] == "True",
        "failed": conditions.get("Failed", ("",))[0] == "True",
    }


def summarize_deployment(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    return {
        "image": _first_image(body, ("spec", "template", "spec")),
        "replicas": spec.get("replicas", 1),
        "updated": status.get("updatedReplicas", 0),
        "ready": status.get("readyReplicas", 0),
        "available": status.get("availableReplicas", 0),
        "total": status.get("replicas", 0),
        "progressing": _conditions(status).get("Progressing", ("", ""))[1],
        "current": body["metadata"].get("generation") == status.get("observedGeneration"),
    }


def summarize_item_service(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    history = status.get("history") or [{}]
    return {
        "phase": status.get("phase"),
        # The newest history entry names the failure (CrashLoopBackOff...); the status reason
        # only the phase's (RolledBack).
        "reason": history[-1].get("reason") or status.get("reason"),
        "message": status.get("message"),
        # The canary analysis' outcome for the newest release ("passed: ...", "inconclusive
        # (too few requests): ...", "skipped: ..."), once it ended.
        "analysis": history[-1].get("analysis"),
        "target": status.get("targetImage"),
        "current": body["metadata"].get("generation") == status.get("observedGeneration"),
    }


def summarize_helm_release(body: dict[str, Any]) -> dict[str, Any]:
    """A Helm release record (a Secret labelled owner=helm): one per revision; a rollback
    writes a new one with status pending-rollback before it touches anything."""
    labels = body["metadata"].get("labels") or {}
    return {
        "instance": labels.get("name"),
        "status": labels.get("status"),
        "version": labels.get("version"),
    }


# (kind, resource, summary, label selector)
_WATCHED: tuple[
    tuple[str, Any, Callable[[dict[str, Any]], dict[str, Any]], dict[str, str] | None], ...
] = (
    ("Pod", Pod, summarize_pod, None),
    ("Job", Job, summarize_job, None),
    ("Deployment", Deployment, summarize_deployment, None),
    ("ItemService", ItemServiceResource, summarize_item_service, None),
    ("HelmRelease", Secret, summarize_helm_release, {"owner": "helm"}),
)


class Recorder:
    """Watches every (namespace, kind) from one asyncio loop in a background thread (the client
    decodes objects in that thread only; concurrent decoding in several threads crashed it);
    `observations` grows until the context exits."""

    def __init__(self, namespaces: list[str], aliases: Mapping[str, str] | None = None) -> None:
        self.namespaces = namespaces
        # repository@digest -> tag: the operator pins each release to the digest its migration
        # ran; the analysis compares tags.
        self.aliases = dict(aliases or {})
        self.observations: list[Observation] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._watch_all()), name="recorder", daemon=True
        )

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=WATCH_WINDOW_SECONDS * 3)

    def snapshot(self) -> list[Observation]:
        with self._lock:
            return list(self.observations)

    async def _watch_all(self) -> None:
        client = AsyncClient()
        try:
            await asyncio.gather(
                *(
                    self._watch(client, namespace, kind, resource, summarize, labels)
                    for namespace in self.namespaces
                    for kind, resource, summarize, labels in _WATCHED
                )
            )
        finally:
            await client.close()

    async def _watch(
        self,
        client: AsyncClient,
        namespace: str,
        kind: str,
        resource: Any,
        summarize: Callable[[dict[str, Any]], dict[str, Any]],
        labels: Mapping[str, str] | None,
    ) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                # Without a resourceVersion the server first sends every existing object as
                # ADDED; the analysis treats an event as "the state at that time" either way.
                async for event, obj in client.watch(
                    resource,
                    namespace=namespace,
                    server_timeout=WATCH_WINDOW_SECONDS,
                    resource_version=version,
                    labels=dict(labels) if labels else None,
                ):
                    body = obj.to_dict()
                    version = body["metadata"].get("resourceVersion") or version
                    fields = summarize(body)
                    if "image" in fields:
                        fields["image"] = self.aliases.get(fields["image"], fields["image"])
                    observation = Observation(
                        time.time(), kind, event, namespace, body["metadata"]["name"], fields
                    )
                    with self._lock:
                        self.observations.append(observation)
                    if self._stop.is_set():
                        return
            except Exception as error:  # a dropped watch is re-opened from scratch
                self.errors.append(f"{kind} in {namespace}: {error}")
                version = None
                await asyncio.sleep(0.5)
