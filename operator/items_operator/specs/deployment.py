"""Deployment running the service: the pod template of a release, scaled by the spec.

The template comes from a release (release.py): the decision layer picks which one serves (the
spec's, or a stored one on rollback); replicas and the rollout strategy always come from the
spec, because scaling is not a release.
"""

from typing import Any

from items_operator.constants import (
    ANNOTATION_ROLLED_BACK_RELEASE,
    COMPONENT_SERVER,
    HTTP_PORT,
    LABEL_RELEASE,
)
from items_operator.model import ItemServiceSpec, Owner, ProbeSpec
from items_operator.specs.common import object_meta, selector_labels, stamp_desired_hash
from items_operator.specs.pod import base_container, base_pod_spec
from items_operator.specs.serviceaccount import service_account_name

# After SIGTERM the service keeps serving this long (readiness already false) before it closes its
# listener, so the endpoints and kube-proxy stop sending it traffic first; without it a rollout
# drops requests ("connection refused", measured by tests/e2e). Set in spec.env to override.
SHUTDOWN_DELAY_ENV = "ITEMS_SHUTDOWN_DELAY_SECONDS"
SHUTDOWN_DELAY_SECONDS = 5
# The service drains in-flight requests for up to this long after the delay (service/cli.py:
# Gunicorn's graceful_timeout = shutdown delay + 30).
DRAIN_SECONDS = 30
# The kubelet SIGKILLs at terminationGracePeriodSeconds: leave room past the server's own timeout.
GRACE_MARGIN_SECONDS = 10
# During a canary analysis the Deployment controller holds the rollout after the first new pod
# (minReadySeconds) a little longer than the analysis runs, so the operator decides first.
CANARY_HOLD_MARGIN_SECONDS = 30
# The API requires progressDeadlineSeconds > minReadySeconds; leave the pod time to start too.
CANARY_PROGRESS_MARGIN_SECONDS = 60


def no_room_to_surge(spec: ItemServiceSpec) -> bool:
    """The spec's maxSurge is 0 (or 0%): a canary can only replace an old pod."""
    return str(spec.rollout.max_surge).rstrip("%") == "0"


def deployment_name(owner: Owner) -> str:
    return owner.name


def _probe(path: str, tuning: ProbeSpec) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": tuning.initial_delay_seconds,
        "periodSeconds": tuning.period_seconds,
        "timeoutSeconds": tuning.timeout_seconds,
        "failureThreshold": tuning.failure_threshold,
    }


def shutdown_delay_seconds(spec: ItemServiceSpec) -> float:
    value = next((e.get("value") for e in spec.env if e.get("name") == SHUTDOWN_DELAY_ENV), None)
    try:
        return max(float(value), 0.0) if value is not None else SHUTDOWN_DELAY_SECONDS
    except ValueError:
        return SHUTDOWN_DELAY_SECONDS  # the service refuses to start with it: no pod to drain


def termination_grace_seconds(spec: ItemServiceSpec) -> int:
    """Shutdown delay + drain + margin, so the kubelet never SIGKILLs a draining pod."""
    return int(shutdown_delay_seconds(spec)) + 1 + DRAIN_SECONDS + GRACE_MARGIN_SECONDS


def build_pod_template(owner: Owner, spec: ItemServiceSpec) -> dict[str, Any]:
    """The pod template of the spec's release, without its release label (see release.py)."""
    container = base_container(spec, spec.image)
    if not any(e.get("name") == SHUTDOWN_DELAY_ENV for e in spec.env):
        container["env"] = [
            *container["env"],
            {"name": SHUTDOWN_DELAY_ENV, "value": str(SHUTDOWN_DELAY_SECONDS)},
        ]
    container = {
        **container,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "livenessProbe": _probe("/healthz", spec.probes.liveness),
        "readinessProbe": _probe("/readyz", spec.probes.readiness),
    }
    if spec.probes.startup is not None:  # absent otherwise: existing releases keep their hash
        container["startupProbe"] = _probe("/healthz", spec.probes.startup)
    meta = object_meta(owner, name=deployment_name(owner), component=COMPONENT_SERVER)
    return {
        "metadata": {"labels": dict(meta["labels"])},
        "spec": {
            **base_pod_spec(spec, service_account_name(owner)),
            "terminationGracePeriodSeconds": termination_grace_seconds(spec),
            "containers": [container],
        },
    }


def build_deployment(
    owner: Owner,
    spec: ItemServiceSpec,
    *,
    template: dict[str, Any],
    paused: bool = False,
    rolled_back_release: str | None = None,
    canary_seconds: int | None = None,
) -> dict[str, Any]:
    """Desired Deployment serving `template` (a release's, carrying its release label).

    `rolled_back_release` records, on the object itself, which release was just rolled back, so
    the decision survives a lost status patch (see decide.py).
    `canary_seconds`: a canary analysis runs; one new pod surges beside all old ones, and the
    controller goes no further until it has been ready this long (plus a margin) — by then
    the operator has passed the release (this is applied again without it) or rolled it back.
    """
    if LABEL_RELEASE not in template["metadata"]["labels"]:
        raise ValueError("a Deployment serves a release: the template needs its release label")
    meta = object_meta(owner, name=deployment_name(owner), component=COMPONENT_SERVER)
    if rolled_back_release is not None:
        meta["annotations"] = {ANNOTATION_ROLLED_BACK_RELEASE: rolled_back_release}
    surge, unavailable = spec.rollout.max_surge, spec.rollout.max_unavailable
    deadline = spec.rollout.progress_deadline_seconds
    if canary_seconds is not None:
        # One new pod first: beside the old ones, or (no room to surge) in place of one.
        surge, unavailable = (0, 1) if no_room_to_surge(spec) else (1, 0)
        hold = canary_seconds + CANARY_HOLD_MARGIN_SECONDS
        deadline = max(deadline, hold + CANARY_PROGRESS_MARGIN_SECONDS)
    deployment_spec: dict[str, Any] = {
        "replicas": spec.replicas,
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": deadline,
        "selector": {"matchLabels": selector_labels(owner, COMPONENT_SERVER)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
        },
        "template": template,
    }
    if canary_seconds is not None:
        deployment_spec["minReadySeconds"] = canary_seconds + CANARY_HOLD_MARGIN_SECONDS
    if paused:
        deployment_spec["paused"] = True
    return stamp_desired_hash(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deployment_spec}
    )
