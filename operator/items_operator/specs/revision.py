"""ControllerRevision: one stored release (its pod template), as StatefulSets keep theirs.

A rollback restores a stored template whole; the ItemService's spec may have moved on since.
"""

from typing import Any

from items_operator.constants import (
    ANNOTATION_IMAGE_ID,
    ANNOTATION_MIGRATION_REPORT,
    ANNOTATION_RELEASE_IMAGE,
    COMPONENT_SERVER,
    LABEL_MIGRATION_KEY,
    LABEL_RELEASE,
)
from items_operator.model import Owner
from items_operator.specs.common import MAX_NAME_LENGTH, object_meta


def revision_name(owner_name: str, release_hash: str) -> str:
    suffix = f"-{release_hash}"
    return owner_name[: MAX_NAME_LENGTH - len(suffix)].rstrip("-") + suffix


def build_controller_revision(
    owner: Owner,
    *,
    revision: int,
    release_hash: str,
    template: dict[str, Any],
    image: str,
    migration_key: str,
    image_id: str = "",
    migration_report: str = "",
) -> dict[str, Any]:
    """Created once per release and never changed (its data is the release); created once its
    migration succeeded, with the image pinned and the migrator's report kept beside it."""
    meta = object_meta(
        owner, name=revision_name(owner.name, release_hash), component=COMPONENT_SERVER
    )
    meta["labels"][LABEL_RELEASE] = release_hash
    meta["labels"][LABEL_MIGRATION_KEY] = migration_key
    meta["annotations"] = {ANNOTATION_RELEASE_IMAGE: image}
    if image_id:
        meta["annotations"][ANNOTATION_IMAGE_ID] = image_id
    if migration_report:
        meta["annotations"][ANNOTATION_MIGRATION_REPORT] = migration_report
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": meta,
        "revision": revision,
        "data": {"template": template},
    }
