"""Releases that must NOT be rolled back, N ItemServices of each at once (CRD defaults
otherwise, each with its own database, no client):

- slow-start: an image that listens only after 90 s; the spec has a startup probe
  (`probes.startup`, 10 s x 15: a 150 s budget) that covers it. One replica: the pod is what
  is judged.
- blip: an image whose /readyz answers 503 once for 8 s, 1 s after its first 200. Two
  replicas, so the rollout (and the verdict) is still open when the blip comes, and
  `probes.readiness.failureThreshold: 1`, so the kubelet marks the pod unready for it (with
  the default 3, an 8 s blip never shows).

Both are deployed on v2 first (a good release: the history the window is learned from), then
get the image at the same moment; the phase ends when every one is Available on it or gave it
up. It runs before the client pods start, so the node's pod limit (110) is not reached.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import analysis
from bench.cluster.analysis import Workload
from bench.cluster.episodes import set_image_ours
from bench.cluster.platform import FALSE, Platform
from bench.cluster.recorder import Recorder
from bench.cluster.workloads import item_service, service_spec
from tests.cluster.kube_support import Kubectl
from tests.operator.cluster.e2e import secret

PHASE_TIMEOUT = 480.0
KINDS: dict[str, dict[str, Any]] = {
    "slow-start": {
        "replicas": 1,
        "probes": {"startup": {"periodSeconds": 10, "failureThreshold": 15}},
    },
    "blip": {"replicas": 2, "probes": {"readiness": {"periodSeconds": 5, "failureThreshold": 1}}},
}


@dataclass
class FalseRollbacks:
    platform: Platform
    runs: int
    workloads: dict[str, list[Workload]] = field(default_factory=dict)

    def image(self, kind: str) -> str:
        faults = self.platform.faults
        return faults.slow_start if kind == "slow-start" else faults.blip

    def deploy(self) -> None:
        """Apply the ItemServices on v2 (returns at once; run() waits for them)."""
        db, kube = self.platform.database, Kubectl(FALSE)
        names = [(k, f"{k}-{i + 1}") for k in KINDS for i in range(self.runs)]
        db.sql("; ".join(f"CREATE DATABASE `{n.replace('-', '_')}`" for _, n in names))
        for kind, name in names:
            url = f"mysql+pymysql://root:{db.password}@{db.host}:3306/{name.replace('-', '_')}"
            kube.apply(secret(f"{name}-db", url))
            spec = service_spec(self.platform.images.v2, f"{name}-db", replicas=1)
            kube.apply(item_service(name, {**spec, **KINDS[kind]}))
            self.workloads.setdefault(kind, []).append(Workload(FALSE, name))

    def run(self, recorder: Recorder) -> dict[str, Any]:
        """Wait for the good release, apply the images, count what was rolled back."""
        v2 = self.platform.images.v2
        every = [w for ws in self.workloads.values() for w in ws]
        self._wait(recorder, every, lambda obs, w: _available_since(obs, w, v2, 0.0), "v2")
        started = time.time()
        for kind, ws in self.workloads.items():
            for w in ws:
                set_image_ours(w, self.image(kind))

        def over(obs: list[Any], w: Workload) -> bool:
            image = self.image(w.name.rsplit("-", 1)[0])
            return bool(
                analysis.item_service_gave_up(obs, w, image, started)
                or _available_since(obs, w, image, started)
            )

        self._wait(recorder, every, over, "a verdict")
        return {kind: self._summary(recorder, kind, started) for kind in self.workloads}

    def _wait(self, recorder: Recorder, every: list[Workload], done: Any, what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while time.monotonic() < deadline:
            obs = recorder.snapshot()
            left = [w.name for w in every if not done(obs, w)]
            if not left:
                return
            time.sleep(1)
        print(f"false rollbacks: {left} without {what} after {PHASE_TIMEOUT:.0f} s", flush=True)

    def _summary(self, recorder: Recorder, kind: str, started: float) -> dict[str, Any]:
        obs, image = recorder.snapshot(), self.image(kind)
        rolled_back: dict[str, str] = {}
        messages: dict[str, str] = {}  # what the status said: the pod, its window, /readyz
        proven: list[float] = []
        ready: list[float] = []
        blips = 0
        for w in self.workloads[kind]:
            gave_up = analysis.item_service_gave_up(obs, w, image, started)
            available = _available_since(obs, w, image, started)
            if gave_up is not None:
                rolled_back[w.name] = str(gave_up.fields.get("reason"))
                messages[w.name] = str(gave_up.fields.get("message"))
            elif available is not None:
                proven.append(round(available - started, 1))
            created = analysis.first_pod_where(obs, w, image, started)
            first_ready = analysis.first_pod_where(obs, w, image, started, state="ready")
            if created is not None and first_ready is not None:
                ready.append(round(first_ready - created, 1))
            blips += analysis.readiness_blips(obs, w, image, started, available)
        return {
            "runs": len(self.workloads[kind]),
            "rolled_back": rolled_back,
            "rolled_back_messages": messages,
            "undecided": len(self.workloads[kind]) - len(rolled_back) - len(proven),
            "seconds_to_available": proven,
            "pod_created_to_ready": ready,
            "median_pod_created_to_ready": statistics.median(ready) if ready else None,
            "blips_before_proven": blips,
        }

    def remove(self) -> None:
        """Delete them (and so their pods) before the fleet's clients start."""
        kube = Kubectl(FALSE)
        kube.run("delete", "itemservices", "--all", "--wait=false", timeout=120, check=False)
        kube.run(
            "wait", "--for=delete", "pods", "--all", "--timeout=180s", timeout=200, check=False
        )


def _available_since(obs: list[Any], w: Workload, image: str, after: float) -> float | None:
    return analysis.item_service_available(obs, w, image, after)
