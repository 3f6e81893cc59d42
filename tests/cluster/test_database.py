"""The in-cluster end-to-end database: the MySQL-compatible image runs in the local cluster and
the service image migrates a schema into it through its Service's DNS name.

ITEMS_E2E_DB_IMAGE picks the image: items-platform/mariadb:10.11-local (images/mariadb, built
from Debian's mariadb-server) by default; GitHub Actions can set the official mysql:8.4 instead.
Both read the same MYSQL_* variables.
"""

from __future__ import annotations

import pytest

from tests.cluster.kube_support import (
    DB_NAME,
    IMAGE,
    Kubectl,
    database_manifests,
    describe,
    service_container,
    wait_until,
)

pytestmark = pytest.mark.cluster

DB_PASSWORD = "items-e2e-password"


@pytest.fixture(scope="module")
def database(kube: Kubectl) -> str:
    """The database as a one-replica Deployment behind a Service, once it accepts TCP on 3306.
    Returns a SQLAlchemy URL that reaches it by the Service's DNS name."""
    for manifest in database_manifests(DB_PASSWORD, app_account=("items", "items", DB_PASSWORD)):
        kube.apply(manifest)

    def ready() -> bool:
        return bool(kube.get("deployment", DB_NAME).get("status", {}).get("readyReplicas") == 1)

    wait_until("the database to accept connections", ready, 180, lambda: describe(kube))
    host = f"{DB_NAME}.{kube.namespace}.svc.cluster.local"
    return f"mysql+pymysql://items:{DB_PASSWORD}@{host}:3306/items"


def test_service_migrates_the_in_cluster_database(kube: Kubectl, database: str) -> None:
    job = "migrate"
    container = service_container(args=None)
    container["args"] = ["migrate"]
    container["env"] = [{"name": "DATABASE_URL", "value": database}]
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": job},
            "spec": {
                # The database answers TCP a moment before it takes logins: allow retries.
                "backoffLimit": 4,
                "activeDeadlineSeconds": 150,
                "template": {
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [container],
                        "volumes": [
                            {"name": "data", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    }
                },
            },
        }
    )

    def finished() -> str | None:
        status = kube.get("job", job).get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        if conditions.get("Complete") == "True":
            return "complete"
        if conditions.get("Failed") == "True":
            return "failed"
        return None

    outcome = wait_until(f"the {IMAGE} migrate Job", finished, 170, lambda: describe(kube))
    logs = kube.run("logs", f"job/{job}", check=False)
    assert outcome == "complete", f"{logs.stdout}\n{logs.stderr}\n{describe(kube)}"
