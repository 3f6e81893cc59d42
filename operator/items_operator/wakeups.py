"""What wakes an ItemService's loop before its sleep ends: watch events of the ItemService
(spec changes), of the objects it owns (a finished migration, a pod that turned ready or
crashed) and, with --cache-reads on, of every kind the caches hold and of the Secret it reads
(the informers call wake_object; without the caches, Kopf's event handlers on Jobs,
Deployments and pods). Each is acted on within a watch round-trip instead of at the next poll;
the polls (or, with the caches, the resync) stay as the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from items_operator.audit import PHANTOMS
from items_operator.cache import shed_item_service
from items_operator.constants import (
    FIELD_MANAGER,
    GROUP,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    PLURAL,
    VERSION,
)
from items_operator.kopf_settings import on_the_loop

# Kopf logs every event handler's success at INFO; for these per-event wake-ups that is noise.
_QUIET = ("wake_reconciler", "wake_owner", "wake_secret_users")
logging.getLogger("kopf.objects").addFilter(
    lambda record: not any(f"'{name}'" in record.getMessage() for name in _QUIET)
)

WAKEUPS: dict[str, asyncio.Event] = {}  # ItemService uid -> its loop's wake-up
UIDS: dict[tuple[str, str], str] = {}  # (namespace, ItemService name) -> uid
SECRETS: dict[str, tuple[str, str]] = {}  # uid -> (namespace, Secret name) it reads
# A wake-up waits this long before the pass starts, so a burst of events (a rollout step moves
# the Deployment, a ReplicaSet and pods together) costs one pass, not one per event.
COALESCE_SECONDS = 0.1

_OWNED = {LABEL_MANAGED_BY: FIELD_MANAGER}
OWNED_KINDS = (("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("", "v1", "pods"))


def enrol(uid: str, namespace: str, name: str) -> asyncio.Event:
    UIDS[(namespace, name)] = uid
    return WAKEUPS.setdefault(uid, asyncio.Event())


def leave(uid: str, namespace: str, name: str) -> None:
    WAKEUPS.pop(uid, None)
    SECRETS.pop(uid, None)
    if UIDS.get((namespace, name)) == uid:
        del UIDS[(namespace, name)]
    if not any(ns == namespace for ns, _ in UIDS):
        PHANTOMS.restarted(namespace)  # all stopped (peering paused them?): audit on return


def _wake(uid: str | None) -> None:
    if uid is not None and (wakeup := WAKEUPS.get(uid)) is not None:
        wakeup.set()


def wake_reconciler(uid: str | None, body: Mapping[str, Any], **_: Any) -> None:
    shed_item_service(body)
    _wake(uid)


kopf.on.event(group=GROUP, version=VERSION, plural=PLURAL)(on_the_loop(wake_reconciler))


def _wake_instance(namespace: str, instance: str) -> None:
    """The loop of the ItemService an owned object names in its instance label."""
    _wake(UIDS.get((namespace, instance)))


def wake_owner(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    _wake_instance(namespace or "", labels.get(LABEL_INSTANCE, ""))


def wake_secret_users(namespace: str | None, name: str | None, **_: Any) -> None:
    for uid, ref in list(SECRETS.items()):
        if ref == (namespace, name):
            _wake(uid)


def watch_owned_objects() -> None:
    """Wake each ItemService's loop on events of its Jobs, Deployment and pods.

    Needs list/watch on those kinds wherever the operator serves: given with --namespace (each
    served namespace has the workload RoleBinding) or with the workload role bound cluster-wide.
    A cluster-wide operator with per-namespace RoleBindings would have these watches refused,
    so there it is off and the polls alone pace the rollouts (see main.py, --watch-owned).
    """
    for group, version, plural in OWNED_KINDS:
        kopf.on.event(group, version, plural, labels=_OWNED)(on_the_loop(wake_owner))


def wake_object(kind: str, namespace: str, name: str, instance: str) -> None:
    """An informer's change (informers.OnChange): a Secret wakes the loops that read it, any
    other object the loop of the ItemService its instance label names."""
    if kind == "Secret":
        wake_secret_users(namespace, name)
    else:
        _wake_instance(namespace, instance)
