"""Labels, names, hashing and the restricted security context shared by the builders."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    APP_NAME,
    COMPONENT_MIGRATION,
    FIELD_MANAGER,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    SERVICE_UID,
)
from items_operator.model import Owner

MAX_NAME_LENGTH = 63
IMAGE_HASH_LENGTH = 10


def image_hash(image: str) -> str:
    """Short, stable fingerprint of an image reference (used in Job names and labels)."""
    return hashlib.sha256(image.encode()).hexdigest()[:IMAGE_HASH_LENGTH]


def migration_job_name(owner_name: str, migration_key: str) -> str:
    """Deterministic per (ItemService, image + database target): a second create is a no-op."""
    suffix = f"-{COMPONENT_MIGRATION}-{migration_key[:IMAGE_HASH_LENGTH]}"
    prefix = owner_name[: MAX_NAME_LENGTH - len(suffix)].rstrip("-")
    return prefix + suffix


def selector_labels(owner: Owner, component: str) -> dict[str, str]:
    """The Deployment selector is immutable, so it holds only labels that never change."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: owner.name, LABEL_COMPONENT: component}


def common_labels(owner: Owner, component: str) -> dict[str, str]:
    return {**selector_labels(owner, component), LABEL_MANAGED_BY: FIELD_MANAGER}


def object_meta(owner: Owner, *, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": common_labels(owner, component),
        "ownerReferences": [owner.owner_reference()],
    }


def desired_hash(obj: dict[str, Any]) -> str:
    """Hash of everything we set, excluding the hash annotation itself."""
    meta = dict(obj.get("metadata", {}))
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != ANNOTATION_DESIRED_HASH
    }
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamp_desired_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """Return obj with the hash annotation set; the handlers compare it to skip no-op writes."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_DESIRED_HASH: ""}
    stamped = {**obj, "metadata": meta}
    meta["annotations"][ANNOTATION_DESIRED_HASH] = desired_hash(stamped)
    return stamped


def pod_security_context() -> dict[str, Any]:
    """Pod-level half of the "restricted" Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": SERVICE_UID,
        "runAsGroup": SERVICE_UID,
        "fsGroup": SERVICE_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level half of the "restricted" Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def writable_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """emptyDirs the service writes to, because its root filesystem is read-only."""
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "data", "emptyDir": {}},
    ]
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the image contract needs a writable /tmp
        {"name": "data", "mountPath": "/var/lib/items"},
    ]
    return volumes, mounts


def quantities(values: dict[str, Any]) -> dict[str, str]:
    """Resource quantities as strings, the API's canonical input form."""
    return {k: str(v) for k, v in sorted(values.items())}
