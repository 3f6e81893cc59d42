"""Migration Job: the target image run once with `migrate` before any pod serves it."""

from typing import Any

from items_operator.constants import (
    ANNOTATION_IMAGE,
    COMPONENT_MIGRATION,
    LABEL_IMAGE_HASH,
    LABEL_MIGRATION_KEY,
)
from items_operator.model import ItemServiceSpec, Owner
from items_operator.specs.common import image_hash, migration_job_name, object_meta
from items_operator.specs.pod import base_container, base_pod_spec
from items_operator.specs.serviceaccount import service_account_name


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
            # No ttlSecondsAfterFinished: a failed Job is the record that this image's migration
            # failed; the operator prunes finished Jobs beyond migration.historyLimit itself.
            "template": {
                "metadata": {"labels": dict(meta["labels"])},
                "spec": {
                    **base_pod_spec(spec, service_account_name(owner)),
                    "restartPolicy": "Never",
                    "containers": [{**base_container(spec, image), "args": ["migrate"]}],
                },
            },
        },
    }
