"""Builders: restricted Pod Security fields, owner references, deterministic names, the PDB rule."""

from __future__ import annotations

from typing import Any

import pytest
from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_IMAGE,
    ANNOTATION_ROLLED_BACK_RELEASE,
    LABEL_IMAGE_HASH,
)
from items_operator.model import ItemService, ItemServiceSpec
from items_operator.release import spec_release
from items_operator.specs.common import desired_hash, image_hash, migration_job_name
from items_operator.specs.deployment import build_deployment, termination_grace_seconds
from items_operator.specs.job import build_migration_job
from items_operator.specs.pdb import build_pdb
from items_operator.specs.service import build_service
from items_operator.specs.serviceaccount import build_service_account

from .world import OWNER, V1, V2, spec


def _key(image: str) -> str:
    return f"key-{image.rsplit(':', 1)[-1]}"[:10]


def _deployment(s: ItemServiceSpec, *, image: str, **kwargs: object) -> dict[str, Any]:
    """The Deployment serving the release of `s` with `image` (rollbacks pass kwargs)."""
    cr = ItemService(OWNER, 1, s.model_copy(update={"image": image}), {})
    template = spec_release(cr, "d1").template
    return build_deployment(OWNER, s, template=template, paused=s.paused, **kwargs)  # type: ignore[arg-type]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def _all_objects() -> list[dict[str, Any]]:
    s = spec(V1, replicas=3)
    pdb = build_pdb(OWNER, s)
    assert pdb is not None
    return [
        _deployment(s, image=V1),
        build_migration_job(OWNER, s, image=V1, migration_key=_key(V1)),
        build_service(OWNER, s),
        build_service_account(OWNER, s),
        pdb,
    ]


@pytest.mark.parametrize("obj", _all_objects(), ids=lambda o: o["kind"])
def test_every_object_is_controlled_by_the_item_service(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    assert meta["namespace"] == OWNER.namespace
    if obj["kind"] == "Job":
        # Deleting the ItemService must not kill a migration mid-DDL: adopted once finished.
        assert "ownerReferences" not in meta
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "items-operator"
        assert obj["spec"]["ttlSecondsAfterFinished"] > 3600  # collects orphans only
        return
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "items.platform.dev/v1alpha1",
            "kind": "ItemService",
            "name": OWNER.name,
            "uid": OWNER.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["app.kubernetes.io/instance"] == OWNER.name
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "items-operator"


@pytest.mark.parametrize(
    "obj",
    [o for o in _all_objects() if o["kind"] in ("Deployment", "Job")],
    ids=lambda o: o["kind"],
)
def test_pods_meet_the_restricted_pod_security_standard(obj: dict[str, Any]) -> None:
    pod = _pod_spec(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["runAsNonRoot"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/items"} <= mounts  # noqa: S108 - writable dirs the image needs
    assert all("hostPath" not in v for v in pod["volumes"])


def test_deployment_serves_the_given_image_with_probes_and_database_env() -> None:
    dep = _deployment(spec(V2, replicas=3), image=V1)
    container = _pod_spec(dep)["containers"][0]
    assert container["image"] == V1  # the decision layer picks the image, not spec.image
    assert dep["spec"]["replicas"] == 3
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["env"][0] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}},
    }
    assert _pod_spec(dep)["terminationGracePeriodSeconds"] == 46  # 5 delay + 1 + 30 drain + 10
    strategy = dep["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 1, "maxUnavailable": 0}
    assert dep["spec"]["progressDeadlineSeconds"] == 300


def test_database_url_as_a_mounted_file() -> None:
    as_file = {"secretRef": {"name": "db", "key": "dsn"}, "asFile": True}
    dep = _deployment(spec(V1, database=as_file), image=V1)
    pod = _pod_spec(dep)
    container = pod["containers"][0]
    assert container["env"][0] == {
        "name": "DATABASE_URL_FILE",
        "value": "/var/run/secrets/items/database-url",
    }
    volume = next(v for v in pod["volumes"] if v["name"] == "database-secret")
    assert volume["secret"]["items"] == [{"key": "dsn", "path": "database-url"}]
    assert not any(e["name"] == "DATABASE_URL" for e in container["env"])


def test_extra_env_follows_the_database_env() -> None:
    dep = _deployment(spec(V1, env=[{"name": "LOG_LEVEL", "value": "debug"}]), image=V1)
    names = [e["name"] for e in _pod_spec(dep)["containers"][0]["env"]]
    assert names == ["DATABASE_URL", "ITEMS_WORKERS", "LOG_LEVEL", "ITEMS_SHUTDOWN_DELAY_SECONDS"]


def test_server_pods_keep_serving_briefly_after_sigterm() -> None:
    """Endpoints and kube-proxy need a moment to drop a terminating pod (tests/e2e measured
    refused connections in every rollout without it); the migration Job does not serve."""
    env = _pod_spec(_deployment(spec(V1), image=V1))["containers"][0]["env"]
    delay = next(e for e in env if e["name"] == "ITEMS_SHUTDOWN_DELAY_SECONDS")
    assert (
        0
        < int(delay["value"])
        < _pod_spec(_deployment(spec(V1), image=V1))["terminationGracePeriodSeconds"]
    )
    job = build_migration_job(OWNER, spec(V1), image=V1, migration_key=_key(V1))
    job_env = _pod_spec(job)["containers"][0]["env"]
    assert not any(e["name"] == "ITEMS_SHUTDOWN_DELAY_SECONDS" for e in job_env)
    own = [{"name": "ITEMS_SHUTDOWN_DELAY_SECONDS", "value": "12"}]
    env = _pod_spec(_deployment(spec(V1, env=own), image=V1))["containers"][0]["env"]
    assert [e for e in env if e["name"] == "ITEMS_SHUTDOWN_DELAY_SECONDS"] == own


def test_selector_does_not_depend_on_image_or_spec() -> None:
    a = _deployment(spec(V1), image=V1)
    b = _deployment(spec(V2, replicas=5), image=V2)
    assert a["spec"]["selector"] == b["spec"]["selector"]  # the selector is immutable


def test_rollback_is_recorded_on_the_deployment() -> None:
    dep = _deployment(spec(V2), image=V1, rolled_back_release="b16e91fbe0")
    assert dep["metadata"]["annotations"][ANNOTATION_ROLLED_BACK_RELEASE] == "b16e91fbe0"


def test_a_deployment_needs_a_release() -> None:
    with pytest.raises(ValueError, match="release label"):
        build_deployment(OWNER, spec(V1), template={"metadata": {"labels": {}}, "spec": {}})


def test_migration_job() -> None:
    job = build_migration_job(
        OWNER,
        spec(V2, migration={"backoffLimit": 2, "activeDeadlineSeconds": 90}),
        image=V2,
        migration_key=_key(V2),
    )
    pod = _pod_spec(job)
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 90
    env = {e["name"]: e.get("value") for e in _pod_spec(job)["containers"][0]["env"]}
    assert env["ITEMS_MIGRATION_PROTECT"] == "[]"  # nothing serves yet: nothing to protect
    assert env["ITEMS_MIGRATION_REPORT_FILE"] == "/dev/termination-log"
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["migrate"]
    assert pod["containers"][0]["image"] == V2
    assert job["metadata"]["annotations"][ANNOTATION_IMAGE] == V2
    assert job["metadata"]["labels"][LABEL_IMAGE_HASH] == image_hash(V2)
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"


def test_migration_job_is_one_pod_at_a_time_and_never_evicted_or_meshed() -> None:
    job = build_migration_job(OWNER, spec(V2), image=V2, migration_key=_key(V2))
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    template = job["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "sidecar.istio.io/inject": "false",
        "linkerd.io/inject": "disabled",
    }
    # The decision layer finds the Job's pods and image by these; they must not change.
    assert template["metadata"]["labels"] == job["metadata"]["labels"]
    assert job["metadata"]["annotations"][ANNOTATION_IMAGE] == V2


def _policy_action(
    policy: dict[str, Any], *, exit_code: int | None, conditions: tuple[str, ...]
) -> str:
    """The Job controller's reading of podFailurePolicy: the first matching rule wins, and a
    failed pod no rule matches counts against backoffLimit."""
    for rule in policy["rules"]:
        on_exit = rule.get("onExitCodes")
        if on_exit is not None and exit_code is not None:
            assert on_exit["containerName"] == "items-service"
            inside = exit_code in on_exit["values"]
            if inside == (on_exit["operator"] == "In"):
                return str(rule["action"])
        for pattern in rule.get("onPodConditions", []):
            if pattern["type"] in conditions and pattern.get("status", "True") == "True":
                return str(rule["action"])
    return "Count"


@pytest.mark.parametrize(
    ("exit_code", "conditions", "action"),
    [
        (1, (), "FailJob"),  # the migration itself failed: retrying would repeat it
        (2, (), "FailJob"),  # invalid configuration
        (3, (), "FailJob"),  # refused by the rollback floor: the same inputs give the same answer
        (143, (), "Ignore"),  # asked to stop (kubectl delete, drain without eviction): re-run
        (75, (), "Ignore"),  # the database was unreachable: the environment, run it again
        (137, (), "Count"),  # OOM-killed or killed past its grace: counted, so it cannot loop
        (137, ("DisruptionTarget",), "Ignore"),  # evicted / drained mid-run: no backoff spent
        (143, ("DisruptionTarget",), "Ignore"),
        (None, ("DisruptionTarget",), "Ignore"),  # preempted before the container started
        (None, (), "Count"),  # e.g. the pod could not start: the ordinary backoff applies
    ],
)
def test_migration_job_pod_failure_policy(
    exit_code: int | None, conditions: tuple[str, ...], action: str
) -> None:
    job = build_migration_job(OWNER, spec(V2), image=V2, migration_key=_key(V2))
    policy = job["spec"]["podFailurePolicy"]
    assert _pod_spec(job)["restartPolicy"] == "Never"  # the API rejects the policy otherwise
    assert _policy_action(policy, exit_code=exit_code, conditions=conditions) == action


def test_migration_job_exit_code_lists_are_sorted() -> None:
    """The API server rejects a podFailurePolicy whose exit codes are not in ascending order."""
    job = build_migration_job(OWNER, spec(V2), image=V2, migration_key=_key(V2))
    for rule in job["spec"]["podFailurePolicy"]["rules"]:
        if "onExitCodes" in rule:
            values = rule["onExitCodes"]["values"]
            assert values == sorted(set(values))


def test_job_name_is_deterministic_and_distinct_per_migration() -> None:
    assert migration_job_name("shop", _key(V1)) == migration_job_name("shop", _key(V1))
    assert migration_job_name("shop", _key(V1)) != migration_job_name("shop", _key(V2))
    assert migration_job_name("shop", _key(V1)) == f"shop-migration-{_key(V1)}"
    assert len(image_hash(V1)) == 10


def test_job_name_fits_a_label_value_for_the_longest_allowed_name() -> None:
    name = migration_job_name("a" * 40, _key(V1))
    assert len(name) <= 63
    long = migration_job_name("b" * 80 + "-", _key(V1))
    assert len(long) <= 63
    assert "--" not in long


@pytest.mark.parametrize(("replicas", "wanted"), [(1, False), (2, True), (5, True)])
def test_pdb_only_when_more_than_one_replica(replicas: int, wanted: bool) -> None:
    pdb = build_pdb(OWNER, spec(V1, replicas=replicas))
    assert (pdb is not None) is wanted
    if pdb is not None:
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_service_targets_the_named_container_port() -> None:
    svc = build_service(OWNER, spec(V1, service={"type": "NodePort", "port": 8080}))
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "server"


def test_service_account_has_no_token_and_carries_pull_secrets() -> None:
    sa = build_service_account(OWNER, spec(V1, imagePullSecrets=["regcred"]))
    assert sa["automountServiceAccountToken"] is False
    assert sa["imagePullSecrets"] == [{"name": "regcred"}]


def test_desired_hash_is_stable_and_tracks_changes() -> None:
    a = _deployment(spec(V1), image=V1)
    again = _deployment(spec(V1), image=V1)
    other = _deployment(spec(V1, replicas=4), image=V1)
    hash_a = a["metadata"]["annotations"][ANNOTATION_DESIRED_HASH]
    assert hash_a == again["metadata"]["annotations"][ANNOTATION_DESIRED_HASH]
    assert hash_a != other["metadata"]["annotations"][ANNOTATION_DESIRED_HASH]
    assert desired_hash(a) == hash_a  # the stamp does not hash itself


def test_resource_quantities_are_strings() -> None:
    dep = _deployment(spec(V1, resources={"requests": {"cpu": 1}, "limits": {}}), image=V1)
    resources = _pod_spec(dep)["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "1", "memory": "160Mi"}, "limits": {"memory": "256Mi"}}


@pytest.mark.parametrize(
    ("workers", "request_mi", "limit_mi"), [(1, 160, 256), (2, 256, 384), (4, 448, 640)]
)
def test_resources_fit_the_worker_count(workers: int, request_mi: int, limit_mi: int) -> None:
    container = _pod_spec(_deployment(spec(V1, workers=workers), image=V1))["containers"][0]
    assert container["resources"]["requests"]["memory"] == f"{request_mi}Mi"
    assert container["resources"]["limits"]["memory"] == f"{limit_mi}Mi"
    assert {"name": "ITEMS_WORKERS", "value": str(workers)} in container["env"]


def test_termination_grace_covers_shutdown_delay_drain_and_margin() -> None:
    pod = _pod_spec(_deployment(spec(V1), image=V1))
    # service/cli.py: Gunicorn's graceful timeout is the shutdown delay (5 s here) + 30 s.
    assert pod["terminationGracePeriodSeconds"] >= 5 + 30 + 5
    slow = spec(V1, env=[{"name": "ITEMS_SHUTDOWN_DELAY_SECONDS", "value": "20"}])
    assert termination_grace_seconds(slow) >= 20 + 30 + 5


def test_paused_release_pauses_the_deployment() -> None:
    assert _deployment(spec(V1, paused=True), image=V1)["spec"]["paused"] is True
    assert "paused" not in _deployment(spec(V1), image=V1)["spec"]


def test_release_hash_covers_the_pod_template_but_not_scaling() -> None:
    def release(s: ItemServiceSpec, digest: str = "d1") -> str:
        return spec_release(ItemService(OWNER, 1, s, {}), digest).hash

    base = release(spec(V1))
    assert release(spec(V1, replicas=7)) == base
    assert release(spec(V1, rollout={"maxSurge": 3})) == base
    assert release(spec(V1, env=[{"name": "A", "value": "1"}])) != base
    assert release(spec(V1, resources={"limits": {"memory": "1Gi"}})) != base
    assert release(spec(V1, probes={"readiness": {"periodSeconds": 9}})) != base
    assert release(spec(V1), digest="d2") != base  # another database target
    assert release(spec(V2)) != base


def test_the_job_knows_the_migrators_exit_codes() -> None:
    """The operator's image does not carry the service: the codes are kept in both, equal."""
    from items_operator.specs import job

    from service import rollback_floor

    assert job.EXIT_UNREACHABLE == rollback_floor.EXIT_UNREACHABLE
