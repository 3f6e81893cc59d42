"""Migration Job: the target image run once with `migrate` before any pod serves it.

Exactly one migrator per database, under any disruption: a replacement pod is started only once
the previous one has fully terminated (`podReplacementPolicy: Failed`), a disruption (eviction,
drain, preemption) neither spends the backoff nor races a pod still in its grace period, and the
migration's own non-zero exit fails the Job at once: retrying a migration that failed on its own
terms only repeats the failure on a database it may have half changed.
"""

import json
from typing import Any, Final

from items_operator.constants import (
    ANNOTATION_IMAGE,
    ANNOTATION_PROTECT_DIGEST,
    COMPONENT_MIGRATION,
    CONTAINER_NAME,
    LABEL_IMAGE_HASH,
    LABEL_MIGRATION_KEY,
    MIGRATION_ALLOW_CONTRACT_ENV,
    MIGRATION_PROTECT_ENV,
    MIGRATION_REPORT_FILE_ENV,
    ORPHAN_JOB_TTL_SECONDS,
    TERMINATION_LOG,
)
from items_operator.model import ItemServiceSpec, Owner
from items_operator.schema_floor import protect_digest
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


# Exit codes of the migration container, as `items-service migrate` and the kubelet give them.
EXIT_STOPPED = 143  # SIGTERM: asked to stop (a deletion, a drain without the eviction API)
EXIT_KILLED = 137  # SIGKILL: out of memory, or still running at the end of its grace period
EXIT_UNREACHABLE = 75  # the database could not be reached (service.rollback_floor)


def pod_failure_policy() -> dict[str, Any]:
    """Rules are evaluated in order: a disruption is ignored before the exit code is looked at.

    Ignored (a replacement starts once the pod is gone, the backoff is not spent): disruptions
    (eviction, preemption, node drain), a stop on request, and a database the migrator could not
    reach within its connect timeout (the environment, never the release; the re-run continues
    where it stopped). Counted: a kill (an OOM that recurs must end). Any other non-zero exit is
    the migration's own verdict: the Job fails.
    """
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "Ignore",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": sorted([EXIT_UNREACHABLE, EXIT_STOPPED]),
                },
            },
            {
                "action": "Count",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": [EXIT_KILLED],
                },
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "NotIn",
                    # The API wants them sorted.
                    "values": sorted([0, EXIT_UNREACHABLE, EXIT_STOPPED, EXIT_KILLED]),
                },
            },
        ]
    }


def migration_env(protect: list[dict[str, Any]], allowed: tuple[str, ...]) -> list[dict[str, str]]:
    """What the migrator must keep working (see schema_floor), and where it reports."""
    return [
        {
            "name": MIGRATION_PROTECT_ENV,
            "value": json.dumps(protect, sort_keys=True, separators=(",", ":")),
        },
        {"name": MIGRATION_ALLOW_CONTRACT_ENV, "value": ",".join(allowed)},
        {"name": MIGRATION_REPORT_FILE_ENV, "value": TERMINATION_LOG},
    ]


def build_migration_job(
    owner: Owner,
    spec: ItemServiceSpec,
    *,
    image: str,
    migration_key: str,
    protect: list[dict[str, Any]] | None = None,
    allowed: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Desired Job; created once and never updated (a Job's pod template is immutable).

    No ownerReference: deleting the ItemService (in any cascade mode) must not kill a migration
    mid-DDL. The operator adopts the Job once it finished; an orphan (its ItemService deleted
    meanwhile) runs to its end and is collected ORPHAN_JOB_TTL_SECONDS later.
    """
    protect = protect or []
    meta = object_meta(
        owner, name=migration_job_name(owner.name, migration_key), component=COMPONENT_MIGRATION
    )
    del meta["ownerReferences"]
    meta["labels"][LABEL_IMAGE_HASH] = image_hash(image)
    meta["labels"][LABEL_MIGRATION_KEY] = migration_key
    meta["annotations"] = {
        ANNOTATION_IMAGE: image,
        ANNOTATION_PROTECT_DIGEST: protect_digest(protect, allowed),
    }
    container = base_container(spec, image)
    container["env"] = [*container["env"], *migration_env(protect, allowed)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": spec.migration.backoff_limit,
            "activeDeadlineSeconds": spec.migration.active_deadline_seconds,
            "podReplacementPolicy": "Failed",
            "ttlSecondsAfterFinished": ORPHAN_JOB_TTL_SECONDS,
            "podFailurePolicy": pod_failure_policy(),
            # The TTL only collects orphans: adoption removes it, since a failed Job is the
            # record that this image's migration failed; the operator prunes finished Jobs
            # beyond migration.historyLimit itself.
            "template": {
                "metadata": {
                    "labels": dict(meta["labels"]),
                    "annotations": dict(MIGRATION_POD_ANNOTATIONS),
                },
                "spec": {
                    **base_pod_spec(spec, service_account_name(owner)),
                    # podFailurePolicy requires Never: OnFailure restarts hide exit codes.
                    "restartPolicy": "Never",
                    "containers": [{**container, "args": ["migrate"]}],
                },
            },
        },
    }
