"""Deployment running the service; the image is chosen by the decision layer, not the spec."""

from typing import Any

from items_operator.constants import (
    ANNOTATION_ROLLED_BACK_GENERATION,
    ANNOTATION_ROLLED_BACK_IMAGE,
    COMPONENT_SERVER,
    HTTP_PORT,
)
from items_operator.model import ItemServiceSpec, Owner, ProbeSpec
from items_operator.specs.common import object_meta, selector_labels, stamp_desired_hash
from items_operator.specs.pod import base_container, base_pod_spec
from items_operator.specs.serviceaccount import service_account_name

# Matches the service's drain: readiness flips false on SIGTERM, in-flight requests finish.
TERMINATION_GRACE_SECONDS = 30
# After SIGTERM the service keeps serving this long (readiness already false) before it closes its
# listener, so the endpoints and kube-proxy stop sending it traffic first; without it a rollout
# drops requests ("connection refused", measured by tests/e2e). Set in spec.env to override.
SHUTDOWN_DELAY_ENV = "ITEMS_SHUTDOWN_DELAY_SECONDS"
SHUTDOWN_DELAY_SECONDS = 5


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


def build_deployment(
    owner: Owner,
    spec: ItemServiceSpec,
    *,
    image: str,
    rolled_back_image: str | None = None,
    rolled_back_generation: int | None = None,
) -> dict[str, Any]:
    """Desired Deployment for `image`.

    `rolled_back_image` records, on the object itself, which image was just rolled back, so the
    decision survives a lost status patch (see decide.py).
    """
    meta = object_meta(owner, name=deployment_name(owner), component=COMPONENT_SERVER)
    if rolled_back_image is not None:
        meta["annotations"] = {
            ANNOTATION_ROLLED_BACK_IMAGE: rolled_back_image,
            ANNOTATION_ROLLED_BACK_GENERATION: str(rolled_back_generation),
        }
    container = base_container(spec, image)
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
    selector = selector_labels(owner, COMPONENT_SERVER)
    return stamp_desired_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": spec.replicas,
                "revisionHistoryLimit": 3,
                "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {
                        "maxSurge": spec.rollout.max_surge,
                        "maxUnavailable": spec.rollout.max_unavailable,
                    },
                },
                "template": {
                    "metadata": {"labels": dict(meta["labels"])},
                    "spec": {
                        **base_pod_spec(spec, service_account_name(owner)),
                        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                        "containers": [container],
                    },
                },
            },
        }
    )
