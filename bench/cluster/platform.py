"""The benchmark's cluster fixtures: namespaces, the shared database, the test images, the
operator (installed with its Helm chart), and the teardown. Built on the test helpers
(tests/cluster, tests/operator/cluster, tests/e2e) so the benchmark runs what the tests prove."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cluster.images import FaultImages
from tests.cluster.kube_support import (
    DB_IMAGE,
    KUBECTL,
    Kubectl,
    database_manifests,
    delete_namespace,
    load_images,
    restricted_namespace,
    wait_for_default_service_account,
)
from tests.e2e.platform import CHART, Images, helm, split_image
from tests.operator.cluster.e2e import OPERATOR_IMAGE, V1, Database

DB_NAMESPACE = "bench-db"
OPERATOR_NAMESPACE = "bench-system"
OPERATOR_RELEASE = "bench"
OURS, HELM, PLAIN, SCALE = "bench-ours", "bench-helm", "bench-plain", "bench-scale"
HELM_EQ = "bench-helm-eq"  # Helm at --timeout equal to ours' readiness window
FALSE = "bench-false"  # the ItemServices that must not be rolled back
WORKLOAD_NAMESPACES = (OURS, HELM, HELM_EQ, PLAIN, FALSE, SCALE)
OPERATED = (OURS, FALSE, SCALE)  # the namespaces the operator serves
NAMESPACE_OF = {"ours": OURS, "helm": HELM, "helm-eq": HELM_EQ, "plain": PLAIN}
ALL_NAMESPACES = (DB_NAMESPACE, OPERATOR_NAMESPACE, *WORKLOAD_NAMESPACES)


@dataclass
class Platform:
    database: Database
    images: Images
    faults: FaultImages

    @staticmethod
    def operator_selector() -> str:
        return (
            f"app.kubernetes.io/name=items-operator,app.kubernetes.io/instance={OPERATOR_RELEASE}"
        )


def up(operator_args: tuple[str, ...] = ()) -> Platform:
    """Namespaces at the restricted level, MariaDB, test images, the operator serving OURS and
    SCALE. Leftovers of an interrupted run are removed first."""
    down()
    for namespace in ALL_NAMESPACES:
        Kubectl(namespace).apply(restricted_namespace(namespace))
    for namespace in ALL_NAMESPACES:
        wait_for_default_service_account(Kubectl(namespace))
    password = secrets.token_hex(12)
    db = Kubectl(DB_NAMESPACE)
    for manifest in database_manifests(password):
        db.apply(manifest)
    load_images(V1, OPERATOR_IMAGE, DB_IMAGE)
    images = Images.build_and_load(V1)
    faults = FaultImages.build_and_load(images)
    repository, tag = split_image(OPERATOR_IMAGE)
    helm(
        "install",
        OPERATOR_RELEASE,
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "replicaCount=1",
        "--set",
        f"watchNamespaces={{{','.join(OPERATED)}}}",
        *([f"--set-json=extraArgs={json.dumps(list(operator_args))}"] if operator_args else []),
        "--wait",
        "--timeout",
        "180s",
        timeout=240,
    )
    # Helm installs CRDs only when absent and never upgrades them: apply this tree's version.
    subprocess.run(
        [KUBECTL, "apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds")],
        capture_output=True,
        timeout=60,
        check=True,
    )
    db.run("rollout", "status", "deployment/items-db", "--timeout=180s", timeout=200)
    database = Database(DB_NAMESPACE, password)
    database.wait_ready(timeout=60)
    return Platform(database, images, faults)


def save_operator_logs(path: Path) -> None:
    """Every operator container's log (its passes' writes with millisecond times), beside the
    results: where an episode's time went, after the namespaces are gone. Best effort."""
    found = subprocess.run(
        [
            *(KUBECTL, "logs", "-n", OPERATOR_NAMESPACE, "-l", Platform.operator_selector()),
            *("--all-containers", "--tail=-1", "--prefix", "--max-log-requests=10"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(found.stdout + found.stderr)


def down() -> None:
    """ItemServices first (while the operator can remove its finalizer), then every Helm
    release, then the namespaces; waits (bounded) until they are gone."""
    existing = subprocess.run(
        [KUBECTL, "get", "namespaces", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    present = [ns for ns in ALL_NAMESPACES if f"namespace/{ns}" in existing]
    if not present:
        return
    for namespace in OPERATED:
        if namespace in present:
            Kubectl(namespace).run(
                "delete", "itemservices", "--all", "--wait=false", timeout=120, check=False
            )
    for namespace in OPERATED:
        if namespace in present:
            kube = Kubectl(namespace)
            gone = kube.run(
                "wait",
                "--for=delete",
                "itemservices",
                "--all",
                "--timeout=120s",
                timeout=150,
                check=False,
            )
            if gone.returncode != 0:  # no operator left to remove the finalizer
                for name in kube.run(
                    "get", "itemservices", "-o", "name", check=False
                ).stdout.split():
                    kube.run(
                        "patch",
                        name,
                        "--type=merge",
                        "-p",
                        '{"metadata":{"finalizers":null}}',
                        check=False,
                    )
    for namespace in (HELM, HELM_EQ, OPERATOR_NAMESPACE):
        if namespace not in present:
            continue
        releases = helm("list", "--namespace", namespace, "-q", check=False).stdout.split()
        for release in releases:
            helm(
                "uninstall",
                release,
                "--namespace",
                namespace,
                "--wait",
                "--timeout",
                "120s",
                timeout=150,
                check=False,
            )
    delete_namespace(*present)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        left = subprocess.run(
            [KUBECTL, "get", "namespaces", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        if not any(f"namespace/{ns}" in left for ns in present):
            return
        time.sleep(1)
    raise TimeoutError(f"namespaces {present} still terminating after 300 s")
