"""The bits that migrated serve, the migrator protects what older images read, and the floor.

The migrator's side (which revisions it refuses, what it reports) has its own tests against
MariaDB; here the World's migration pods report what a real migrator would, and the decision
layer is held to what it does with that: pin, protect, block, retry, refuse a rollback.
"""

from __future__ import annotations

import json
from typing import Any

from items_operator.constants import ANNOTATION_IMAGE_ID, ANNOTATION_MIGRATION_REPORT
from items_operator.observe import JobState
from items_operator.plan import AdoptJob

from .world import V1, V2, V3, World, available_world

DIGEST = "sha256:" + "ab" * 32
REPO = "registry.example/items-service"


def _report(outcome: str = "migrated", **fields: Any) -> str:
    body = {"outcome": outcome, "head": "0005", "uses": {"items": ["id", "name"]}, **fields}
    return json.dumps(body)


def _image(world: World) -> str:
    assert world.deployment is not None
    return str(world.deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def _protect(world: World, job: str) -> list[dict[str, Any]]:
    return list(json.loads(world.job_env[job]["ITEMS_MIGRATION_PROTECT"]))


def _active_job(world: World) -> str:
    return next(name for name, j in world.jobs.items() if j.state is JobState.ACTIVE)


def _conditions(world: World) -> dict[str, str]:
    return {c["type"]: c["status"] for c in world.status["conditions"]}


def test_the_serving_pods_run_the_digest_that_migrated() -> None:
    world = World()
    world.migration_image_id = f"docker.io/items-service@{DIGEST}"
    world.migration_report = _report()
    world.settle()
    assert _image(world) == f"{REPO}@{DIGEST}"  # the tag moving later changes nothing
    assert world.status["servingImage"] == f"{REPO}@{DIGEST}"
    assert world.status["targetImage"] == V1  # people still read the tag they wrote
    revision = next(iter(world.revisions.values()))
    assert revision["metadata"]["annotations"][ANNOTATION_IMAGE_ID].endswith(DIGEST)
    assert world.status["history"][-1]["imageID"].endswith(DIGEST)


def test_an_env_only_release_keeps_the_pin_of_the_schema_it_shares() -> None:
    world = World()
    world.migration_image_id = f"docker.io/items-service@{DIGEST}"
    world.migration_report = _report()
    world.settle()
    world.change(env=[{"name": "FEATURE", "value": "on"}])
    world.settle()
    assert world.status["reason"] == "RolloutComplete"
    assert _image(world) == f"{REPO}@{DIGEST}"


def test_a_rollback_restores_the_pinned_bits_of_the_last_good_release() -> None:
    world = World()
    world.migration_image_id = f"docker.io/items-service@{DIGEST}"
    world.migration_report = _report()
    world.settle()
    world.migration_image_id = "docker.io/items-service@sha256:" + "cd" * 32
    world.change(image=V2)
    world.step()
    world.finish_jobs()
    world.step()
    assert _image(world) == f"{REPO}@sha256:{'cd' * 32}"
    world.controllers(ready=False, waiting=("CrashLoopBackOff",))
    world.tick(130)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _image(world) == f"{REPO}@{DIGEST}"


def test_without_a_repository_digest_the_tag_stays() -> None:
    world = World()
    world.migration_image_id = "sha256:" + "ef" * 32  # loaded by hand: no registry digest
    world.settle()
    assert _image(world) == V1
    assert world.status["phase"] == "Available"


def test_finished_jobs_are_adopted_once_and_then_nothing_is_written() -> None:
    world = World()
    world.migration_report = _report()
    world.step()
    job = _active_job(world)
    assert not world.jobs[job].adopted  # a deletion of the ItemService cannot collect it
    world.finish_jobs()
    plan = world.pass_once()
    adopt = [a for a in plan.actions if isinstance(a, AdoptJob)]
    assert [a.name for a in adopt] == [job]
    assert json.loads(adopt[0].annotations[ANNOTATION_MIGRATION_REPORT])["head"] == "0005"
    world.settle()
    assert world.status["phase"] == "Available"
    world.controllers()
    assert not world.step().actions  # steady state: no write


def test_the_migrator_is_told_what_the_rollback_target_reads() -> None:
    world = World()
    world.migration_report = _report(uses={"items": ["id", "legacy"]})
    world.settle()
    world.change(image=V2)
    world.step()
    entries = _protect(world, _active_job(world))
    assert [(e["image"], e["role"]) for e in entries] == [(V1, "rollback target")]
    assert entries[0]["uses"] == {"items": ["id", "legacy"]}


def test_a_release_recorded_before_reports_is_protected_as_unknown() -> None:
    world = available_world()  # its migration pod reported nothing
    world.change(image=V2)
    world.step()
    assert _protect(world, _active_job(world))[0]["uses"] is None


def _blocked(world: World) -> None:
    world.finish_jobs(
        JobState.FAILED,
        report=json.dumps(
            {
                "outcome": "blocked",
                "revision": "0006",
                "image": V1,
                "role": "rollback target",
                "why": f"0006 drops column items.legacy, which {V1} (the rollback target) reads",
            }
        ),
    )


def test_a_blocked_contract_migration_changes_nothing_and_says_what_to_release_first() -> None:
    world = World()
    world.migration_report = _report(uses={"items": ["id", "legacy"]})
    world.settle()
    before = world.deployment
    world.change(image=V3)
    world.step()
    blocked_job = _active_job(world)
    _blocked(world)
    for _ in range(3):
        world.controllers()
        world.step()
    assert world.status["reason"] == "MigrationBlocked"
    assert _conditions(world)["MigrationBlocked"] == "True"
    assert "items.legacy" in world.status["message"]
    assert V1 in world.status["message"]
    assert "allow-contract=0006" in world.status["message"]
    assert world.deployment == before  # nothing rolled out
    assert blocked_job in world.jobs  # not retried by itself: the same inputs give the same no
    assert world.status["history"][-1]["outcome"] == "MigrationBlocked"


def test_an_intermediate_release_lifts_the_block() -> None:
    world = World()
    world.migration_report = _report(uses={"items": ["id", "legacy"]})
    world.settle()
    world.change(image=V3)
    world.step()
    _blocked(world)
    world.step()
    # V2 no longer reads items.legacy; once it is the rollback target, V3's migration is retried
    world.migration_report = _report(uses={"items": ["id"]})
    world.change(image=V2)
    world.settle()
    assert world.status["phase"] == "Available"
    world.change(image=V3)
    world.settle()
    assert world.status["reason"] == "RolloutComplete", world.status["message"]
    jobs = [j for j in world.jobs.values() if j.image == V3]
    assert len(jobs) == 1
    assert jobs[0].state is JobState.SUCCEEDED
    assert _conditions(world)["MigrationBlocked"] == "False"


def test_allowing_the_revision_retries_the_blocked_migration_with_the_allowance() -> None:
    world = World()
    world.migration_report = _report(uses={"items": ["id", "legacy"]})
    world.settle()
    world.change(image=V3)
    world.step()
    first = _active_job(world)
    _blocked(world)
    world.step()
    world.allow_contract = ("0006",)
    world.step()  # the refused Job is deleted (it ran nothing) ...
    world.step()  # ... and created again, told what it may remove
    job = _active_job(world)
    assert job == first
    assert world.job_env[job]["ITEMS_MIGRATION_ALLOW_CONTRACT"] == "0006"
    assert world.status["reason"] == "Migrating"


def test_the_floor_and_a_requested_rollback_below_it() -> None:
    world = World()
    world.migration_report = _report(uses={"items": ["id", "legacy"]})
    world.settle()
    world.migration_report = _report(uses={"items": ["id"]})
    world.change(image=V2)
    world.settle()
    assert world.status["rollbackFloor"]["revision"] == 1  # nothing removed yet
    world.migration_report = _report(
        head="0006", uses={"items": ["id"]}, removed={"columns": ["items.legacy"]}
    )
    world.change(image=V3)
    world.settle()
    floor = world.status["rollbackFloor"]
    assert (floor["revision"], floor["image"], floor["schemaHead"]) == (2, V2, "0006")
    world.rollback_to = 1  # V1 reads items.legacy, which 0006 dropped
    world.step()
    assert world.status["reason"] == "RevisionBelowFloor"
    assert "items.legacy" in world.status["message"]
    assert _image(world) == V3
    world.rollback_to = 2
    world.settle()
    assert world.status["reason"] == "RollbackRequested"
    assert _image(world) == V2


def test_a_report_text_parsed_twice_is_one_report_while_held() -> None:
    """A fleet on one image keeps the same report on every ItemService's Jobs and revisions:
    parsed once while any record holds it (schema_floor._PARSED), not once per object."""
    from items_operator.schema_floor import parse_report

    text = json.dumps({"outcome": "migrated", "head": "0006", "uses": {"items": ["id", "name"]}})
    first = parse_report(text)
    assert first is not None
    assert parse_report(text) is first
    assert first.uses == {"items": frozenset({"id", "name"})}
    assert parse_report("not json") is None
    assert parse_report(json.dumps({"outcome": "migrated", "head": "0007"})) is not first
