"""Pod template pieces shared by the Deployment and the migration Job (same image, same DB)."""

from typing import Any

from items_operator.constants import (
    CONTAINER_NAME,
    DATABASE_SECRET_FILE,
    DATABASE_SECRET_MOUNT,
    DATABASE_URL_ENV,
    DATABASE_URL_FILE_ENV,
)
from items_operator.model import ItemServiceSpec
from items_operator.specs.common import (
    container_security_context,
    pod_security_context,
    quantities,
    writable_volumes,
)


def database_env(spec: ItemServiceSpec) -> list[dict[str, Any]]:
    ref = spec.database.secret_ref
    if spec.database.as_file:
        path = f"{DATABASE_SECRET_MOUNT}/{DATABASE_SECRET_FILE}"
        return [{"name": DATABASE_URL_FILE_ENV, "value": path}]
    return [
        {
            "name": DATABASE_URL_ENV,
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    ]


def database_volume(spec: ItemServiceSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not spec.database.as_file:
        return [], []
    ref = spec.database.secret_ref
    volume = {
        "name": "database-secret",
        "secret": {
            "secretName": ref.name,
            "items": [{"key": ref.key, "path": DATABASE_SECRET_FILE}],
            "defaultMode": 0o440,
        },
    }
    mount = {"name": "database-secret", "mountPath": DATABASE_SECRET_MOUNT, "readOnly": True}
    return [volume], [mount]


def base_container(spec: ItemServiceSpec, image: str) -> dict[str, Any]:
    """The container both workloads share; callers add args, ports and probes."""
    _, writable_mounts = writable_volumes()
    _, secret_mounts = database_volume(spec)
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [*database_env(spec), *spec.env],
        "resources": {
            "requests": quantities(spec.resources.requests),
            "limits": quantities(spec.resources.limits),
        },
        "securityContext": container_security_context(),
        "volumeMounts": [*writable_mounts, *secret_mounts],
    }


def base_pod_spec(spec: ItemServiceSpec, service_account: str) -> dict[str, Any]:
    writable, _ = writable_volumes()
    secret_volumes, _ = database_volume(spec)
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "volumes": [*writable, *secret_volumes],
    }
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    return pod
