"""Whether the operator may feed its caches: `--cache-reads auto` turns them on only where the
RBAC grants list/watch on Secrets. A pass waits for its namespace's informers to list, so an
image of this version under the older role (`get` only) would otherwise serve no ItemService
there, the refusal visible only in its log and items_operator_cache_unsynced. Asked once at
start (SelfSubjectAccessReview, which every authenticated identity may create)."""

from __future__ import annotations

from collections.abc import Sequence

from lightkube import Client
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

CACHE_VERBS = ("list", "watch")


def missing_secret_access(namespaces: Sequence[str], client: Client | None = None) -> str | None:
    """What the caches need and this identity lacks ("watch secrets in shop"), or None."""
    client = client or Client()
    for namespace in namespaces or (None,):
        for verb in CACHE_VERBS:
            review = SelfSubjectAccessReview(
                spec=SelfSubjectAccessReviewSpec(
                    resourceAttributes=ResourceAttributes(
                        verb=verb, resource="secrets", namespace=namespace
                    )
                )
            )
            answer = client.create(review)
            if answer.status is None or not answer.status.allowed:
                return f"{verb} secrets in {namespace or 'all namespaces'}"
    return None
