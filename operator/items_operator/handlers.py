"""Thin Kopf layer: one daemon per ItemService runs read → decide → write until the CR is gone.

Why a daemon and not change handlers: the decision depends on Jobs, Pods and the Deployment as
much as on the spec, and a broken rollout must be noticed within seconds. The daemon re-runs the
pure decide() on an adaptive interval (Plan.requeue_after: 2 s while rolling out, 60 s idle) and
is woken at once by any event of the ItemService or of the Jobs, Deployment and pods it owns.
All reads and writes for owned objects happen in the CR's namespace, so the workload permissions
can stay namespaced (see operator/rbac/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import kopf
from lightkube import ApiError, AsyncClient

from items_operator import kube, leadership, metrics
from items_operator.constants import (
    FIELD_MANAGER,
    GROUP,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    PLURAL,
    VERSION,
)
from items_operator.decide import decide
from items_operator.fleet import UpgradeWave
from items_operator.model import ItemService
from items_operator.observe import JobState, Observed
from items_operator.plan import Action, AdoptJob, Apply, Create, Delete, FailJob, Plan
from items_operator.rejections import Rejection, classify
from items_operator.status import merge_patch

# Kopf logs every event handler's success at INFO; for these per-event wake-ups that is noise.
logging.getLogger("kopf.objects").addFilter(
    lambda record: (
        not any(f"'{name}'" in record.getMessage() for name in ("wake_reconciler", "wake_owner"))
    )
)

# Woken by watch events of the ItemService (spec changes) and of its Jobs, Deployment and pods
# (a finished migration, a pod that turned ready or crashed), so each is acted on within a watch
# round-trip instead of at the next poll; the polls stay as the safety net.
_WAKEUPS: dict[str, asyncio.Event] = {}
_UIDS: dict[tuple[str, str], str] = {}  # (namespace, ItemService name) -> uid
# A wake-up waits this long before the pass starts, so a burst of events (a rollout step moves
# the Deployment, a ReplicaSet and pods together) costs one pass, not one per event.
COALESCE_SECONDS = 0.1
MAX_ERROR_BACKOFF = 60.0
REFUSED_RETRY_SECONDS = 10.0
# A write refused because its object changed since the pass read it: decide again soon.
CONFLICT_RETRY_SECONDS = 0.2
# A standby's daemon is woken when it leads; this bounds how late it notices its own stop.
STANDBY_CHECK_SECONDS = 5.0


def apply_settings(settings: kopf.OperatorSettings) -> None:
    """Kopf settings; separate from the startup handler so tests can check them offline."""
    # Kopf's bookkeeping goes to annotations under our prefix; status stays ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/operator"
    # A watch without a server timeout can hang silently behind a load balancer.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    # One ClusterKopfPeering even when serving a namespace list: one active replica in total.
    settings.peering.clusterwide = True
    # Only the events we post explicitly; log lines stay in the logs.
    settings.posting.loggers = False


_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def apply_scanning(settings: kopf.OperatorSettings, namespaces: Sequence[str]) -> None:
    """Serving named namespaces needs no namespace listing: say so to Kopf.

    Kopf lists and watches Namespaces whenever it serves a namespace list, to resolve globs;
    our ClusterRole does not grant that, and the 403 is retried for about a minute before Kopf
    falls back, so an operator started with `--namespace items` would sit idle that long.
    With plain names only, scanning is switched off (the CRD is then read once at start, not
    watched); globs keep it on and need `list`/`watch` on namespaces granted separately.
    """
    if namespaces and all(_NAMESPACE_NAME.fullmatch(n) for n in namespaces):
        settings.scanning.disabled = True


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    apply_settings(settings)
    memo.client = AsyncClient(field_manager=FIELD_MANAGER)
    memo.clock = kube.ServerClock()
    memo.fence = leadership.start(memo.get("lease"))
    memo.setdefault("wave", UpgradeWave())


@kopf.on.cleanup()
async def close_client(memo: kopf.Memo, **_: Any) -> None:
    client: AsyncClient = memo.client
    await leadership.stop(memo.fence)  # the daemons have stopped: a standby may go now
    await client.close()


@kopf.on.event(group=GROUP, version=VERSION, plural=PLURAL)
def wake_reconciler(uid: str | None, **_: Any) -> None:
    if uid is not None and (wakeup := _WAKEUPS.get(uid)) is not None:
        wakeup.set()


_OWNED = {LABEL_MANAGED_BY: FIELD_MANAGER}
OWNED_KINDS = (("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("", "v1", "pods"))


def wake_owner(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    uid = _UIDS.get((namespace or "", labels.get(LABEL_INSTANCE, "")))
    if uid is not None and (wakeup := _WAKEUPS.get(uid)) is not None:
        wakeup.set()


def watch_owned_objects() -> None:
    """Wake each ItemService's loop on events of its Jobs, Deployment and pods.

    Needs list/watch on those kinds wherever the operator serves: given with --namespace (each
    served namespace has the workload RoleBinding) or with the workload role bound cluster-wide.
    A cluster-wide operator with per-namespace RoleBindings would have these watches refused,
    so there it is off and the polls alone pace the rollouts (see main.py, --watch-owned).
    """
    for group, version, plural in OWNED_KINDS:
        kopf.on.event(group, version, plural, labels=_OWNED)(wake_owner)


# On CR deletion or operator exit the loop is woken (event) or, at worst, cancelled after 5+5 s;
# every step is idempotent, so a cancelled pass is simply redone by the next owner.
@kopf.daemon(
    group=GROUP,
    version=VERSION,
    plural=PLURAL,
    cancellation_backoff=5.0,
    cancellation_timeout=5.0,
)
async def reconcile_loop(
    name: str | None,
    namespace: str | None,
    uid: str | None,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    if name is None or namespace is None or uid is None:
        raise kopf.PermanentError("ItemService without name, namespace or uid")
    client: AsyncClient = memo.client
    fence: leadership.Fence = memo.fence
    wakeup = _WAKEUPS.setdefault(uid, asyncio.Event())
    _UIDS[(namespace, name)] = uid
    error_backoff = 1.0
    try:
        while not stopped:
            if not await fence.wait_for_leadership(STANDBY_CHECK_SECONDS):
                continue  # a standby reads and writes nothing
            wakeup.clear()
            started = time.monotonic()
            try:
                delay = await reconcile_once(
                    client, memo.clock, name, namespace, body, logger, memo.wave, fence=fence
                )
                metrics.RECONCILES.labels("ok").inc()
                error_backoff = 1.0
            except leadership.NotLeaderError:
                metrics.FENCED.inc()
                logger.info("not the leader (any more): this pass wrote nothing further")
                delay = 0.0
            except ApiError as error:
                metrics.RECONCILES.labels("error").inc()
                logger.warning(f"API error, retrying in {error_backoff:.0f}s: {error}")
                if fence.may_write():
                    await _report_rejection(client, name, namespace, body, error)
                delay, error_backoff = error_backoff, min(error_backoff * 2, MAX_ERROR_BACKOFF)
            except Exception:
                # Keep the loop alive through network errors; the next pass starts from scratch.
                metrics.RECONCILES.labels("error").inc()
                logger.exception(f"reconcile failed, retrying in {error_backoff:.0f}s")
                delay, error_backoff = error_backoff, min(error_backoff * 2, MAX_ERROR_BACKOFF)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=delay)
                await asyncio.sleep(COALESCE_SECONDS)
    finally:
        memo.wave.forget(uid)
        _WAKEUPS.pop(uid, None)
        if _UIDS.get((namespace, name)) == uid:
            del _UIDS[(namespace, name)]


async def _report_rejection(
    client: AsyncClient, name: str, namespace: str, body: kopf.Body, error: ApiError
) -> None:
    """Make a refused read or status write visible on the ItemService (RBAC missing, ...)."""
    rejection = classify(error, namespace=namespace)
    if rejection.transient or error.status.code == 404:
        return  # retried quietly
    message = f"the API server refused a request ({rejection.refusal}): {rejection.message}"
    status = body.get("status") or {}
    if status.get("message") == message:
        return
    kopf.warn(body, reason=str(rejection.refusal), message=message)
    with contextlib.suppress(ApiError):
        await kube.patch_status(client, name, namespace, {"message": message})


async def reconcile_once(
    client: AsyncClient,
    clock: kube.ServerClock,
    name: str,
    namespace: str,
    body: kopf.Body,
    logger: kopf.Logger,
    wave: UpgradeWave,
    *,
    fence: leadership.Fence,
) -> float:
    """One level-based pass; returns seconds until the next one.

    Every write first asks the fence (NotLeaderError: this replica stops here). The Deployment's
    change and the status carry the resourceVersions this pass read: a 409 means someone (a
    newer leader, a person) changed them since, and the pass is decided again from fresh reads.
    """
    raw = await kube.read_item_service(client, name, namespace)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return 1.0  # Kopf is stopping this daemon; owned objects go by garbage collection
    read_version: str | None = raw["metadata"].get("resourceVersion")
    cr = ItemService.from_body(raw)
    observed = await kube.observe(client, cr)
    uid = cr.owner.uid
    observed = replace(observed, upgrade_slot=wave.may_start(uid), upgrade_wave=wave.describe())
    plan = decide(cr, observed, await clock.now(client))
    wave.observe(uid, name, plan.operator_upgrade, plan.status)
    metrics.UPGRADE_WAVE_ROLLING.set(len(wave.rolling))
    metrics.UPGRADE_WAVE_HALTED.set(1 if wave.halted_by else 0)

    fence.check()
    refused: list[dict[str, str]] = []
    for action in plan.actions:  # each on its own: a refused Service never blocks a rollback
        verb, kind, target = _verb_and_target(action)
        try:
            fence.check()
            await kube.execute(client, namespace, _with_precondition(action, observed))
        except (ApiError, kube.ForeignObjectError) as error:
            if isinstance(error, ApiError) and error.status.code == 409:
                logger.info(f"{verb} {kind}/{target}: changed since read; deciding again")
                return CONFLICT_RETRY_SECONDS
            rejection = classify(error, namespace=namespace)
            metrics.WRITES_REFUSED.labels(verb, kind, str(rejection.refusal)).inc()
            logger.warning(f"{verb} {kind}/{target} refused: {rejection.message}")
            refused.append(_refusal_entry(kind, target, rejection))
            continue
        metrics.WRITES.labels(verb, kind).inc()
        logger.info(f"{verb} {kind}/{target}")

    status = dict(plan.status)
    if refused:
        status["refusedWrites"] = refused
    patch = merge_patch(cr.status, status)
    if patch:
        fence.check()
        try:
            await kube.patch_status(client, name, namespace, patch, resource_version=read_version)
        except ApiError as error:
            if error.status.code != 409:
                raise
            logger.info("the ItemService changed since read; deciding again")
            return CONFLICT_RETRY_SECONDS
        metrics.WRITES.labels("patch-status", "ItemService").inc()
    _record_outcomes(plan)  # once the decision is stored: a re-decided pass counts once
    # Events after the status they announce: a pass re-decided on a 409 posts them once.
    fence.check()
    for event in plan.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    previous_refusals = cr.status.get("refusedWrites") or []
    for entry in refused:
        if entry not in previous_refusals:  # announced once, not every pass
            message = f"{entry['object']}: {entry['message']}"
            kopf.warn(body, reason=entry["reason"], message=message)
    # A refused write is retried soon, not at the idle pace; the refusal itself is in status.
    return min(plan.requeue_after, REFUSED_RETRY_SECONDS) if refused else plan.requeue_after


def _with_precondition(action: Action, observed: Observed) -> Action:
    """A change of the Deployment applies only to the Deployment this pass read, so a stale
    leader cannot undo a rollback made since (409); its status churns during a rollout, which
    costs a re-decided pass now and then. Other objects are created once by name or are not
    worth the churn."""
    version = observed.deployment.resource_version if observed.deployment else None
    if isinstance(action, Apply) and action.kind == "Deployment" and version is not None:
        return action.on_version(version)
    return action


def _refusal_entry(kind: str, name: str, rejection: Rejection) -> dict[str, str]:
    return {
        "object": f"{kind}/{name}",
        "reason": str(rejection.refusal),
        "message": rejection.message[:500],
    }


def _verb_and_target(action: Action) -> tuple[str, str, str]:
    match action:
        case Apply():
            return "apply", action.kind, action.name
        case Create():
            return "create", action.kind, action.name
        case FailJob():
            return "fail", "Job", action.name
        case AdoptJob():
            return "adopt", "Job", action.name
        case Delete():
            return "delete", action.kind, action.name


def _record_outcomes(plan: Plan) -> None:
    if plan.rolled_back is not None:
        metrics.ROLLBACKS.labels(plan.rolled_back.kind.value).inc()
    job = plan.migration_finished
    if job is not None:
        outcome = "succeeded" if job.state is JobState.SUCCEEDED else "failed"
        metrics.MIGRATIONS.labels(outcome).inc()
        if job.started_at is not None and job.finished_at is not None:
            metrics.MIGRATION_SECONDS.observe((job.finished_at - job.started_at).total_seconds())
