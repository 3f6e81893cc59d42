"""What the database's schema still allows: the bits that migrated, the report, the floor.

The migration Job's container (`items-service migrate`) is the only party that knows which
revisions are pending on this database, so it enforces the floor itself: the operator tells it
what must keep working (the rollback target and the serving release, with the tables and columns
their images read), and it refuses a contract revision that removes any of it (exit 3, nothing
run). It reports the outcome as its termination message; the operator keeps that report on the
release's ControllerRevision, and from those reports computes `status.rollbackFloor`: the oldest
stored release that the database, as migrated now, still serves.

Pinning: the migration pod's container status carries the image ID it ran. When that is a
repository digest (an image pulled from a registry), the release's pod template is rewritten to
`repository@sha256:...` before it is stored, so a tag moved after the migration cannot change
what serves. A bare ID (an image loaded by hand, no registry) cannot be run by reference: the
template keeps the tag, and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass
from typing import Any

from items_operator.constants import CONTAINER_NAME

SERVES_SCHEMA = frozenset({"migrated", "current"})  # reports that know the database's whole chain


@dataclass(frozen=True)
class MigrationReport:
    """The migrator's termination message, parsed (unknown fields ignored)."""

    outcome: str  # migrated | current | ahead | blocked | failed
    head: str | None = None
    uses: dict[str, frozenset[str]] | None = None  # table -> columns this image reads
    removed_tables: frozenset[str] = frozenset()
    removed_columns: frozenset[str] = frozenset()  # "table.column"
    needs: frozenset[str] = frozenset()  # "table.column" an older image must use
    why: str = ""
    revision: str = ""  # the contract revision a blocked run refused
    raw: str = ""  # compact JSON as received, kept on the ControllerRevision

    def blocks(self, uses: dict[str, frozenset[str]] | None) -> str | None:
        """Why an image with these `uses` cannot serve this schema, or None when it can."""
        if uses is None:
            return "what it reads is unknown (released before reports existed)"
        gone = sorted(t for t in self.removed_tables if t in uses)
        gone += sorted(
            c
            for c in self.removed_columns
            if c.partition(".")[2] in uses.get(c.partition(".")[0], ())
        )
        if gone:
            return f"it reads {', '.join(gone)}, which the schema no longer has"
        missing = sorted(
            n for n in self.needs if n.partition(".")[2] not in uses.get(n.partition(".")[0], ())
        )
        if missing:
            return f"it does not write {', '.join(missing)}, which the schema now relies on"
        return None


def _names(value: Any) -> frozenset[str]:
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()


# One parsed report per distinct text while anything holds it: a fleet on one image keeps
# the same report on each ItemService's Jobs and revisions (~5 KiB each, parsed; its sets of
# table and column names), and the reports are immutable.
_PARSED: weakref.WeakValueDictionary[str, MigrationReport] = weakref.WeakValueDictionary()


def parse_report(text: str | None) -> MigrationReport | None:
    if not text:
        return None
    report = _PARSED.get(text)
    if report is None:
        report = _parse(text)
        if report is not None:
            _PARSED[text] = report
    return report


def _parse(text: str) -> MigrationReport | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("outcome"), str):
        return None
    raw_uses = body.get("uses")
    uses = (
        {str(t): _names(cols) for t, cols in raw_uses.items()}
        if isinstance(raw_uses, dict) and not body.get("usesTruncated")
        else None
    )
    removed: dict[str, Any] = body["removed"] if isinstance(body.get("removed"), dict) else {}
    return MigrationReport(
        outcome=body["outcome"],
        head=str(body["head"]) if body.get("head") else None,
        uses=uses,
        removed_tables=_names(removed.get("tables")),
        removed_columns=_names(removed.get("columns")),
        needs=_names(body.get("needs")),
        why=str(body.get("why") or body.get("error") or ""),
        revision=str(body.get("revision") or ""),
        raw=json.dumps(body, sort_keys=True, separators=(",", ":")),
    )


def uses_json(uses: dict[str, frozenset[str]] | None) -> dict[str, list[str]] | None:
    return None if uses is None else {t: sorted(cols) for t, cols in sorted(uses.items())}


def protect_digest(protect: list[dict[str, Any]], allowed: tuple[str, ...]) -> str:
    canonical = json.dumps([protect, list(allowed)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def pinned_image(image: str, image_id: str | None) -> str | None:
    """`repository@sha256:...` of the bits that ran, when the runtime reports a repo digest."""
    if "@sha256:" in image:
        return image  # the spec pins already
    if not image_id or "@sha256:" not in image_id:
        return None
    digest = image_id.rpartition("@")[2]
    last = image.rpartition("/")[2]
    repository = image[: len(image) - len(last)] + last.partition(":")[0]
    return f"{repository}@{digest}"


def with_image(template: dict[str, Any], image: str) -> dict[str, Any]:
    """The template with the service container's image replaced (nothing else changes)."""
    spec = dict(template.get("spec") or {})
    spec["containers"] = [
        {**c, "image": image} if c.get("name") == CONTAINER_NAME else c
        for c in spec.get("containers") or []
    ]
    return {**template, "spec": spec}
