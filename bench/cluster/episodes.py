"""The fleet (reps workloads per mechanism, each with its own database and in-cluster client
counting failed requests) and the v1 -> v2 upgrade episodes, one at a time, ours and Helm's
alternating, so they do not share the CPU. The failure classes are in failure_episodes.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import analysis
from bench.cluster.analysis import Workload
from bench.cluster.client import client, failures_between
from bench.cluster.platform import HELM, HELM_EQ, OURS, PLAIN, Platform
from bench.cluster.recorder import Observation, Recorder
from bench.cluster.workloads import item_service, plain_objects, service_spec, write_hook_chart
from tests.cluster.kube_support import Kubectl, wait_until
from tests.e2e.platform import ClientLoop, helm_binary
from tests.operator.cluster.e2e import secret

REPLICAS = 2
SETTLE_TIMEOUT = 300.0
CLIENT_DEADLINE = 3600.0
# --quick (a check of the pipeline, not a result): every baseline gives up after this long.
QUICK_DEADLINE = 60


@dataclass
class Episode:
    mechanism: str  # ours, helm, helm-eq, plain
    kind: str  # upgrade, broken, or a failure class (classes.py)
    workload: Workload
    old: str
    new: str
    started: float
    ended: float | None = None
    command_seconds: float | None = None
    command_exit: int | None = None
    steps: dict[str, float | None] = field(default_factory=dict)
    failed_requests: int = 0
    requests: int = 0
    # Failure classes: the operator's reason; ours' readiness window or Helm's --timeout, and
    # the previous good release's time-to-ready (ours), as this episode had them.
    reason: str | None = None
    limit: float | None = None
    previous_time_to_ready: float | None = None
    analysis: str | None = None  # ours: the canary analysis' outcome, if one ended

    def since_start(self, step: str) -> float | None:
        at = self.steps.get(step)
        return None if at is None else round(at - self.started, 2)

    def between(self, first: str, second: str) -> float | None:
        a, b = self.steps.get(first), self.steps.get(second)
        return None if a is None or b is None else round(b - a, 2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        fields = dict(data)
        namespace, name = fields.pop("workload").split("/")
        return cls(workload=Workload(namespace, name), **fields)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["workload"] = f"{self.workload.namespace}/{self.workload.name}"
        return data


@dataclass
class Fleet:
    """reps workloads per mechanism, each with its own database and client."""

    platform: Platform
    workdir: Path
    reps: int
    workloads: dict[str, list[Workload]] = field(default_factory=dict)
    clients: dict[str, ClientLoop] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def names(self, mechanism: str) -> list[str]:
        return [f"{mechanism}-{i + 1}" for i in range(self.reps)]

    def deploy(self) -> None:
        """v1 for ours and Helm (each through its own migration path, upgraded to v2 in the
        upgrade episodes); v2 for Helm at ours' timeout (upgraded only in the failure classes)
        and for the plain Deployment, whose Job the benchmark runs by hand once."""
        # Ours first, on its own: the readiness window is learned from the time-to-ready of
        # its good releases, and v1 would otherwise start while the whole fleet migrates.
        self._deploy((("ours", OURS),))
        self._deploy((("helm", HELM), ("helm-eq", HELM_EQ), ("plain", PLAIN)))

    def _deploy(self, mechanisms: tuple[tuple[str, str], ...]) -> None:
        images, db = self.platform.images, self.platform.database
        every = [(m, ns, n) for m, ns in mechanisms for n in self.names(m)]
        db.sql("; ".join(f"CREATE DATABASE `{n.replace('-', '_')}`" for _, _, n in every))
        installs: list[subprocess.Popen[str]] = []
        for mechanism, namespace, name in every:
            kube = Kubectl(namespace)
            url = f"mysql+pymysql://root:{db.password}@{db.host}:3306/{name.replace('-', '_')}"
            kube.apply(secret(f"{name}-db", url))
            self.workloads.setdefault(mechanism, []).append(Workload(namespace, name))
            first = images.v1 if mechanism in ("ours", "helm") else images.v2
            spec = service_spec(first, f"{name}-db", replicas=REPLICAS)
            self.specs[name] = spec
            if mechanism == "ours":
                kube.apply(item_service(name, spec))
            elif mechanism in ("helm", "helm-eq"):
                chart = write_hook_chart(self.workdir, name, namespace, spec)
                installs.append(
                    subprocess.Popen(
                        [
                            helm_binary(),
                            "install",
                            name,
                            str(chart),
                            "--namespace",
                            namespace,
                            "--set",
                            f"image={first}",
                            "--wait",
                            "--timeout",
                            "10m",
                        ],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                )
            else:
                objects = plain_objects(name, namespace, spec, first)
                for kind in ("ServiceAccount", "Service", "PodDisruptionBudget", "Job"):
                    if kind in objects:
                        kube.apply(objects[kind])
        for mechanism, namespace, name in every:
            kube = Kubectl(namespace)
            if mechanism == "plain":
                objects = plain_objects(name, namespace, self.specs[name], images.v2)
                job = objects["Job"]["metadata"]["name"]
                kube.run(
                    "wait", "--for=condition=complete", f"job/{job}", "--timeout=300s", timeout=320
                )
                kube.apply(objects["Deployment"])
        for install in installs:
            output, _ = install.communicate(timeout=700)
            if install.returncode != 0:
                raise RuntimeError(f"helm install failed:\n{output}")
        for mechanism, namespace, name in every:
            kube = Kubectl(namespace)
            if mechanism == "ours":
                kube.run(
                    "wait",
                    "--for=jsonpath={.status.phase}=Available",
                    f"itemservice/{name}",
                    "--timeout=300s",
                    timeout=320,
                )
            kube.run("rollout", "status", f"deployment/{name}", "--timeout=300s", timeout=320)

    def start_clients(self, mechanisms: tuple[str, ...]) -> None:
        image = self.platform.images.v1
        for mechanism in mechanisms:
            for w in self.workloads[mechanism]:
                if w.name not in self.clients:
                    loop = client(Kubectl(w.namespace), w.name, image, CLIENT_DEADLINE)
                    loop.start(timeout=120)
                    self.clients[w.name] = loop

    def stop_clients(self) -> dict[str, dict[str, Any]]:
        results = {name: loop.stop(timeout=120) for name, loop in self.clients.items()}
        self.clients.clear()
        return results


def set_image_ours(w: Workload, image: str, **spec: Any) -> None:
    Kubectl(w.namespace).run(
        "patch",
        "itemservice",
        w.name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"image": image, **spec}}),
    )


def helm_upgrade(fleet: Fleet, w: Workload, image: str, *extra: str) -> subprocess.Popen[str]:
    chart = fleet.workdir / f"chart-{w.name}"
    return subprocess.Popen(
        [
            helm_binary(),
            "upgrade",
            w.name,
            str(chart),
            "--namespace",
            w.namespace,
            "--set",
            f"image={image}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_settled(recorder: Recorder, w: Workload, image: str, after: float) -> float:
    def settled() -> float | None:
        return analysis.settled_on(recorder.snapshot(), w, image, after)

    return wait_until(f"{w.name} settled on {image}", settled, SETTLE_TIMEOUT)


def upgrades(fleet: Fleet, recorder: Recorder) -> list[Episode]:
    """v1 -> v2, one workload at a time, ours and Helm's (`helm upgrade --wait`) alternating."""
    v1, v2 = fleet.platform.images.v1, fleet.platform.images.v2
    episodes: list[Episode] = []
    for ours, theirs in zip(fleet.workloads["ours"], fleet.workloads["helm"], strict=True):
        episode = Episode("ours", "upgrade", ours, v1, v2, time.time())
        set_image_ours(ours, v2)
        episode.ended = _wait_settled(recorder, ours, v2, episode.started)
        episodes.append(episode)

        episode = Episode("helm", "upgrade", theirs, v1, v2, time.time())
        command = helm_upgrade(fleet, theirs, v2, "--wait")
        output, _ = command.communicate(timeout=SETTLE_TIMEOUT + 60)
        episode.command_seconds = round(time.time() - episode.started, 2)
        episode.command_exit = command.returncode
        if command.returncode != 0:
            raise RuntimeError(f"helm upgrade {theirs.name} failed:\n{output}")
        episode.ended = _wait_settled(recorder, theirs, v2, episode.started)
        episodes.append(episode)
    observations = recorder.snapshot()
    for episode in episodes:
        _upgrade_steps(episode, observations)
    return episodes


def _upgrade_steps(episode: Episode, obs: list[Observation]) -> None:
    w, new, t0 = episode.workload, episode.new, episode.started
    episode.steps = {
        "job_created": analysis.job_created(obs, w, new, t0),
        "job_succeeded": analysis.job_succeeded(obs, w, new, t0),
        "deployment_updated": analysis.deployment_on(obs, w, new, t0),
        "first_new_pod": analysis.first_pod(obs, w, new, t0),
        "settled": episode.ended,
    }


def count_failures(episodes: list[Episode], results: dict[str, dict[str, Any]]) -> None:
    for episode in episodes:
        result = results.get(episode.workload.name) or {}
        end = episode.ended or time.time()
        episode.failed_requests, episode.requests = failures_between(
            result, episode.started, end + 1
        )
