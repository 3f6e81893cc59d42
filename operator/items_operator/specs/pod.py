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


WORKERS_ENV = "ITEMS_WORKERS"
# Measured (docs/benchmarks.md): ~100-106 MiB resident per Uvicorn worker, ~40 MiB for the
# Gunicorn master. The limit leaves headroom for a request burst; the request is what is used.
MEMORY_LIMIT_BASE_MI, MEMORY_LIMIT_PER_WORKER_MI = 128, 128
MEMORY_REQUEST_BASE_MI, MEMORY_REQUEST_PER_WORKER_MI = 64, 96
CPU_REQUEST_PER_WORKER_M = 100


def derived_resources(spec: ItemServiceSpec) -> dict[str, dict[str, str]]:
    """Requests and limits that fit spec.workers; keys set in spec.resources win."""
    workers = spec.workers
    requests = {
        "cpu": f"{CPU_REQUEST_PER_WORKER_M * workers}m",
        "memory": f"{MEMORY_REQUEST_BASE_MI + MEMORY_REQUEST_PER_WORKER_MI * workers}Mi",
    }
    limits = {"memory": f"{MEMORY_LIMIT_BASE_MI + MEMORY_LIMIT_PER_WORKER_MI * workers}Mi"}
    return {
        "requests": quantities({**requests, **spec.resources.requests}),
        "limits": quantities({**limits, **spec.resources.limits}),
    }


def workers_env(spec: ItemServiceSpec) -> list[dict[str, Any]]:
    if any(e.get("name") == WORKERS_ENV for e in spec.env):
        return []
    return [{"name": WORKERS_ENV, "value": str(spec.workers)}]


def base_container(spec: ItemServiceSpec, image: str) -> dict[str, Any]:
    """The container both workloads share; callers add args, ports and probes."""
    _, writable_mounts = writable_volumes()
    _, secret_mounts = database_volume(spec)
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [*database_env(spec), *workers_env(spec), *spec.env],
        "resources": derived_resources(spec),
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
