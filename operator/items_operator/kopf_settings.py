"""Kopf's settings for this operator; apart from the handlers so tests can check them offline."""

from __future__ import annotations

import re
from collections.abc import Sequence

import kopf

from items_operator.constants import GROUP


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
