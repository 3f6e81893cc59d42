"""Migration Job: the target image run once with `migrate` before any pod serves it.

Exactly one migrator per database, under any disruption: a replacement pod is started only once
the previous one has fully terminated (`podReplacementPolicy: Failed`), a disruption (eviction,
drain, preemption) neither spends the backoff nor races a pod still in its grace period, and the
migration's own non-zero exit fails the Job at once: retrying a migration that failed on its own
terms only repeats the failure on a database it may have half changed.
"""

from typing import Any, Final

from items_operator.constants import (
    ANNOTATION_IMAGE,
    COMPONENT_MIGRATION,
    CONTAINER_NAME,
    LABEL_IMAGE_HASH,
    LABEL_MIGRATION_KEY,
)
from items_operator.model import ItemServiceSpec, Owner
from items_operator.specs.common import image_hash, migration_job_name, object_meta
from items_operator.specs.pod import base_container, base_pod_spec
from items_operator.specs.serviceaccount import service_account_name

# On the migration pod: autoscalers must not evict it mid-DDL, and a mesh sidecar would keep the
# pod (and so the Job) running after the migration exits.
MIGRATION_POD_ANNOTATIONS: Final[dict[str, str]] = {
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    "sidecar.istio.io/inject": "false",
    "linkerd.io/inject": "disabled",
}


def pod_failure_policy() -> dict[str, Any]:
    """Rules are evaluated in order: a disruption is ignored before the exit code is looked at."""
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "NotIn",
                    "values": [0],
                },
            },
        ]
    }


def build_migration_job(
    owner: Owner, spec: ItemServiceSpec, *, image: str, migration_key: str
) -> dict[str, Any]:
    """Desired Job; created once and never updated (a Job's pod template is immutable)."""
    meta = object_meta(
        owner, name=migration_job_name(owner.name, migration_key), component=COMPONENT_MIGRATION
    )
    meta["labels"][LABEL_IMAGE_HASH] = image_hash(image)
    meta["labels"][LABEL_MIGRATION_KEY] = migration_key
    meta["annotations"] = {ANNOTATION_IMAGE: image}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": spec.migration.backoff_limit,
            "activeDeadlineSeconds": spec.migration.active_deadline_seconds,
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": pod_failure_policy(),
            # No ttlSecondsAfterFinished: a failed Job is the record that this image's migration
            # failed; the operator prunes finished Jobs beyond migration.historyLimit itself.
            "template": {
                "metadata": {
                    "labels": dict(meta["labels"]),
                    "annotations": dict(MIGRATION_POD_ANNOTATIONS),
                },
                "spec": {
                    **base_pod_spec(spec, service_account_name(owner)),
                    # podFailurePolicy requires Never: OnFailure restarts hide exit codes.
                    "restartPolicy": "Never",
                    "containers": [{**base_container(spec, image), "args": ["migrate"]}],
                },
            },
        },
    }
