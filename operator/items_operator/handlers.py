"""Thin Kopf layer: one daemon per ItemService runs read → decide → write until the CR is gone.

Why a daemon and not change handlers: the decision depends on Jobs, Pods and the Deployment as
much as on the spec, and a broken rollout must be noticed within seconds. The daemon re-runs the
pure decide() on an adaptive interval (Plan.requeue_after: 2 s while rolling out, 60 s idle;
with --cache-reads on, a jittered resync of minutes when idle and, in motion, the deadline the
decision names when every input is watched: pacing.py) and is woken at once by watch events
(wakeups.py). Reads come from the API or, with --cache-reads on, from
watch-fed indexes (cache.py); either way a write is never repeated on a view that has not
caught up with it (lag.py).
All reads and writes for owned objects happen in the CR's namespace, so the workload permissions
can stay namespaced (see operator/rbac/).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import kopf
from lightkube import ApiError, AsyncClient

from items_operator import (
    audit,
    cache,
    kube,
    kube_proxy,
    leadership,
    memory_report,
    metrics,
    wakeups,
    writing,
)
from items_operator.constants import FIELD_MANAGER, GROUP, KIND, PLURAL, VERSION
from items_operator.decide import decide
from items_operator.fleet import UpgradeWave
from items_operator.kopf_settings import WatchTimeouts, apply_settings, watch_timeouts
from items_operator.lag import WriteMemory
from items_operator.model import ItemService
from items_operator.pacing import CacheMode, PassLimiter, StartupPacer, next_sleep
from items_operator.policy import AVAILABLE_PHASES, IDLE_POLL
from items_operator.reads import IndexView
from items_operator.rejections import classify
from items_operator.status import merge_patch

MAX_ERROR_BACKOFF = 60.0
REFUSED_RETRY_SECONDS = 10.0
REFUSED_RETRY_FLOOR = 2.0
# A pass that finds its own last write not yet in the cache waits this long at most before it
# looks again; the write's watch event wakes it sooner (lag.py).
LAG_RETRY_SECONDS = 1.0
# A write refused because its object changed since the pass read it: decide again soon.
CONFLICT_RETRY_SECONDS = 0.2
# A standby's daemon is woken when it leads; this bounds how late it notices its own stop.
STANDBY_CHECK_SECONDS = 5.0
CACHE_MODE: CacheMode | None = None
CACHE_NAMESPACES: tuple[str, ...] = ()
TRIM_SECONDS = memory_report.TRIM_SECONDS
WATCH: WatchTimeouts = watch_timeouts()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    apply_settings(settings, WATCH)
    memo.client = AsyncClient(field_manager=FIELD_MANAGER)
    memo.clock = kube_proxy.ServerClock()
    memo.fence = leadership.start(memo.get("lease"))
    memo.setdefault("wave", UpgradeWave())
    previous_trimmer: asyncio.Task[None] | None = memo.get("trimmer")
    if previous_trimmer is not None:
        previous_trimmer.cancel()
    if TRIM_SECONDS > 0:
        memo.trimmer = asyncio.create_task(memory_report.trim_periodically(TRIM_SECONDS))
    if CACHE_MODE is not None:  # the informers list while Kopf starts; the passes wait for them
        previous: cache.ObjectCache | None = memo.get("objects")
        if previous is not None:  # a retried startup: one set of informers only
            await previous.stop()
        memo.objects = cache.ObjectCache.start(CACHE_NAMESPACES, WATCH, wakeups.wake_object)


@kopf.on.cleanup()
async def close_client(memo: kopf.Memo, **_: Any) -> None:
    client: AsyncClient = memo.client
    await leadership.stop(memo.fence)  # the daemons have stopped: a standby may go now
    objects: cache.ObjectCache | None = memo.get("objects")
    if objects is not None:
        await objects.stop()
    trimmer: asyncio.Task[None] | None = memo.get("trimmer")
    if trimmer is not None:
        trimmer.cancel()
    await client.close()


def set_trim_seconds(seconds: float) -> None:
    """--trim-seconds: how often the heap is trimmed (memory_report.trim_periodically); 0: never."""
    global TRIM_SECONDS
    TRIM_SECONDS = seconds


def set_watch_timeout(seconds: float) -> None:
    """--watch-timeout: how long a watch may deliver no event before it is resumed; with
    --cache-reads on, what bounds a silent watch's stale view (kopf_settings.WatchTimeouts)."""
    global WATCH
    WATCH = watch_timeouts(seconds)


def read_from_caches(
    *, resync: float, concurrency: int, startup_rate: float, namespaces: Sequence[str] = ()
) -> None:
    """--cache-reads on: informers of every cached kind in `namespaces` (none: cluster-wide),
    which also wake the passes on their events (in place of Kopf's owned-object watches),
    since a steady pass no longer polls (a new Secret, a deleted Service, ...)."""
    global CACHE_MODE, CACHE_NAMESPACES
    audit.PHANTOMS.interval = resync  # each served namespace audited once a resync (audit.py)
    CACHE_NAMESPACES = tuple(namespaces)
    CACHE_MODE = CacheMode(resync, PassLimiter(concurrency), StartupPacer(startup_rate))


def read_from_api() -> None:
    """--cache-reads off again (in-process tests start operators of both kinds)."""
    global CACHE_MODE
    CACHE_MODE = None


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
    **kwargs: Any,
) -> None:
    if name is None or namespace is None or uid is None:
        raise kopf.PermanentError("ItemService without name, namespace or uid")
    client: AsyncClient = memo.client
    fence: leadership.Fence = memo.fence
    wakeup = wakeups.enrol(uid, namespace, name)
    mode, memory = CACHE_MODE, WriteMemory()
    objects: cache.ObjectCache | None = memo.get("objects") if mode is not None else None
    if objects is not None:
        cache.export_sizes(objects)
    # Which pass goes first when passes queue (PassLimiter): those of ItemServices in motion.
    in_motion = (body.get("status") or {}).get("phase") not in AVAILABLE_PHASES
    error_backoff, delay = 1.0, 0.0 if in_motion else IDLE_POLL
    try:
        if mode is not None and not in_motion:  # those in motion start at once
            await asyncio.sleep(mode.pacer.delay())
        while not stopped:
            if not await fence.wait_for_leadership(STANDBY_CHECK_SECONDS):
                continue  # a standby reads and writes nothing
            if objects is not None and not await objects.wait_synced(
                namespace, STANDBY_CHECK_SECONDS
            ):
                continue  # no pass on a view not listed yet (or refused since)
            wakeup.clear()
            started = time.monotonic()
            try:
                async with _pass_slot(mode, urgent=delay < IDLE_POLL):
                    delay = await reconcile_once(
                        client,
                        memo.clock,
                        name,
                        namespace,
                        body,
                        logger,
                        memo.wave,
                        fence=fence,
                        cache=objects,
                        memory=memory,
                        pace=mode,
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
                    await writing.report_rejection(client, name, namespace, body, error)
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
                await asyncio.sleep(wakeups.COALESCE_SECONDS)
    finally:
        memo.wave.forget(uid)
        kube_proxy.forget(namespace, name)
        wakeups.leave(uid, namespace, name)


def _pass_slot(
    mode: CacheMode | None, *, urgent: bool
) -> contextlib.AbstractAsyncContextManager[None]:
    return mode.limiter.slot(urgent=urgent) if mode is not None else contextlib.nullcontext()


async def reconcile_once(
    client: AsyncClient,
    clock: kube_proxy.ServerClock,
    name: str,
    namespace: str,
    body: kopf.Body,
    logger: kopf.Logger,
    wave: UpgradeWave,
    *,
    fence: leadership.Fence,
    cache: IndexView | None = None,
    memory: WriteMemory | None = None,
    pace: CacheMode | None = None,
) -> float:
    """One level-based pass; returns seconds until the next one. With `cache`, the ItemService
    is Kopf's live body and the rest comes from the indexes (no request in steady state).

    Every write first asks the fence (NotLeaderError: this replica stops here). The Deployment's
    change and the status carry the resourceVersions this pass read: a 409 means someone (a
    newer leader, a person) changed them since, and the pass is decided again from fresh reads.
    """
    if cache is None:
        raw = await kube.read_item_service(client, name, namespace)
    else:
        raw = copy.deepcopy(dict(body))  # a snapshot: Kopf replaces the live body on events
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return 1.0  # Kopf is stopping this daemon; owned objects go by garbage collection
    read_version: str | None = raw["metadata"].get("resourceVersion")
    cr = ItemService.from_body(raw)
    wakeups.SECRETS[cr.owner.uid] = (namespace, cr.spec.database.secret_ref.name)
    now = await clock.now(client)
    observed = await kube.observe(client, cr, cache=cache, now=now)
    memory = memory if memory is not None else WriteMemory()
    versions = {**observed.versions, (KIND, name): str(read_version)}
    if memory.waiting(versions):
        return LAG_RETRY_SECONDS  # this view predates our own last write: not a basis to act
    uid = cr.owner.uid
    wave.note(uid, cr.status, time.monotonic())
    # No await from here to wave.observe: the slot is checked and taken in one step.
    observed = replace(
        observed,
        upgrade_slot=wave.may_start(uid, time.monotonic()),
        upgrade_halted=wave.halted_by is not None,
        upgrade_wave=wave.describe(),
    )
    plan = decide(cr, observed, now)
    wave.observe(uid, name, plan.operator_upgrade, plan.status, time.monotonic())
    metrics.UPGRADE_WAVE_ROLLING.set(len(wave.rolling))
    metrics.UPGRADE_WAVE_HALTED.set(1 if wave.halted_by else 0)

    fence.check()
    refused: list[dict[str, str]] = []
    for action in plan.actions:  # each on its own: a refused Service never blocks a rollback
        verb, kind, target = writing.verb_and_target(action)
        if memory.repeats((action.kind, action.name), action, versions):
            continue  # written already; the view has not caught up
        try:
            fence.check()
            after = await kube.execute(
                client, namespace, writing.with_precondition(action, observed)
            )
        except (ApiError, kube.ForeignObjectError) as error:
            if isinstance(error, ApiError) and error.status.code == 409:
                logger.info(f"{verb} {kind}/{target}: changed since read; deciding again")
                return CONFLICT_RETRY_SECONDS
            rejection = classify(error, namespace=namespace)
            metrics.WRITES_REFUSED.labels(verb, kind, str(rejection.refusal)).inc()
            logger.warning(f"{verb} {kind}/{target} refused: {rejection.message}")
            refused.append(writing.refusal_entry(kind, target, rejection))
            continue
        metrics.WRITES.labels(verb, kind).inc()
        logger.info(f"{verb} {kind}/{target}")
        memory.wrote((action.kind, action.name), action, versions, after)

    status = dict(plan.status)
    if refused:
        status["refusedWrites"] = refused
    # The same status as last written, on a view that has not seen it: its events went out too.
    repeat = memory.repeats((KIND, name), status, versions)
    patch = merge_patch(cr.status, status)
    if patch and not repeat:
        fence.check()
        try:
            after = await kube.patch_status(
                client, name, namespace, patch, resource_version=read_version
            )
        except ApiError as error:
            if error.status.code != 409:
                raise
            logger.info("the ItemService changed since read; deciding again")
            return CONFLICT_RETRY_SECONDS
        metrics.WRITES.labels("patch-status", "ItemService").inc()
        memory.wrote((KIND, name), status, versions, after)
    if not repeat:
        metrics.record_outcomes(plan)  # once the decision is stored: a re-decided pass counts once
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
    if refused:  # not sooner than the floor: a pass that asked to run at once would spin
        return max(min(plan.requeue_after, REFUSED_RETRY_SECONDS), REFUSED_RETRY_FLOOR)
    return plan.requeue_after if pace is None else next_sleep(plan, pace.resync, pace.rng)
