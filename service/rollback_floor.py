"""The rollback floor: which pending contract revisions would break an image that must keep working.

The operator tells `items-service migrate` which releases must survive this migration (the
rollback target, the image serving now), each with the tables and columns its models use (its
own `migrate --plan` "uses"). A pending contract revision is refused while one of them still
uses a table or column the revision removes, lacks something the revision needs
(``contract_needs``), or has no recorded uses at all (a release from before this check: nothing
proves it safe). A person may allow a revision by id; the operator passes that on.

Indexes and constraints are not usages: dropping an index makes an older image's queries slower,
not wrong, and dropping a constraint accepts more than before. Where an older image's correctness
rests on one (a uniqueness it relies on), the revision says what replaces it with
``contract_needs`` (0005: uniqueness moved to items.sku_key, which older images do not write).

Everything here is pure: environment in, decisions and a report out. The I/O is in
service/migrate.py (the lock, the database) and service/cli.py (exit codes, the report file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PROTECT_ENV = "ITEMS_MIGRATION_PROTECT"
ALLOW_ENV = "ITEMS_MIGRATION_ALLOW_CONTRACT"
REPORT_ENV = "ITEMS_MIGRATION_REPORT_FILE"
# Kubernetes keeps at most 4096 bytes of a termination message; a report is always shorter.
REPORT_LIMIT = 4096
# What an operator passes today; other roles are accepted and named as given.
ROLLBACK_TARGET = "rollback target"
SERVING = "serving"

# Report outcomes (the "outcome" field) and exit codes of `items-service migrate`.
MIGRATED = "migrated"
CURRENT = "current"
AHEAD = "ahead"
BLOCKED = "blocked"
FAILED = "failed"
UNREACHABLE = "unreachable"
EXIT_FAILED = 1
EXIT_BLOCKED = 3
EXIT_UNREACHABLE = 75  # EX_TEMPFAIL: the database could not be reached; run again later


class FloorConfigError(ValueError):
    """ITEMS_MIGRATION_PROTECT or ITEMS_MIGRATION_ALLOW_CONTRACT is malformed."""


Uses = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Protected:
    """A release that must keep working after this migration."""

    release: str
    image: str
    role: str
    uses: Uses | None  # None: recorded before releases reported what they use

    def describe(self) -> str:
        who = f"release {self.release} ({self.image})" if self.release else f"image {self.image}"
        role = {ROLLBACK_TARGET: "the rollback target", SERVING: "serving now"}.get(
            self.role, self.role
        )
        return f"{who}, {role}," if role else f"{who},"


@dataclass(frozen=True)
class Contract:
    """A contract revision as `migrate --plan` describes it."""

    revision: str
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # "table.column"
    needs: tuple[str, ...] = ()  # "table" or "table.column"

    @classmethod
    def from_plan(cls, entry: Mapping[str, Any]) -> Contract:
        removes = entry.get("removes") or {}
        return cls(
            revision=str(entry["revision"]),
            tables=tuple(removes.get("tables") or ()),
            columns=tuple(removes.get("columns") or ()),
            needs=tuple(entry.get("needs") or ()),
        )

    @property
    def checkable(self) -> bool:
        """Whether any image's uses could make this revision unsafe for it."""
        return bool(self.tables or self.columns or self.needs)


@dataclass(frozen=True)
class Block:
    """One contract revision one protected release cannot survive."""

    revision: str
    protected: Protected
    removes: tuple[str, ...] = ()  # removed tables / "table.column" it still uses
    needs: tuple[str, ...] = ()  # needed names it does not use
    unknown: bool = False  # its uses are unknown; removes and needs then list all

    def why(self) -> str:
        who = self.protected.describe()
        fix = f"or allow {self.revision} explicitly"
        if self.unknown:
            does = " and ".join(
                part
                for part in (
                    f"removes {_listed(self.removes)}" if self.removes else "",
                    f"needs {_listed(self.needs)}" if self.needs else "",
                )
                if part
            )
            return (
                f"revision {self.revision} {does}, and {who} was recorded without the "
                "tables and columns it uses, so nothing proves it survives; release an "
                f"image that reports its uses first, {fix}"
            )
        parts = []
        if self.removes:
            parts.append(f"removes {_listed(self.removes)}, which {who} still uses")
        if self.needs:
            parts.append(f"needs {_listed(self.needs)}, which {who} does not use")
        first = (
            f"an image that no longer uses {_listed(self.removes)}"
            if self.removes
            else f"an image that uses {_listed(self.needs)}"
        )
        if self.removes and self.needs:
            first += f" and uses {_listed(self.needs)}"
        return f"revision {self.revision} {' and '.join(parts)}; release {first} first, {fix}"


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "nothing"


def _uses(uses: Uses, name: str) -> bool:
    table, _, column = name.partition(".")
    return table in uses and (not column or column in uses[table])


def check(contract: Contract, entry: Protected) -> Block | None:
    """Whether ``entry`` survives ``contract``; the Block says why not."""
    if entry.uses is None:
        if not contract.checkable:
            return None  # the answer would be "safe" whatever it uses
        return Block(
            contract.revision,
            entry,
            contract.tables + contract.columns,
            contract.needs,
            unknown=True,
        )
    still_used = tuple(
        name for name in contract.tables + contract.columns if _uses(entry.uses, name)
    )
    lacking = tuple(name for name in contract.needs if not _uses(entry.uses, name))
    if not still_used and not lacking:
        return None
    return Block(contract.revision, entry, still_used, lacking)


def blocks(
    pending: Iterable[Contract], protect: Iterable[Protected], allow: frozenset[str] | set[str]
) -> list[Block]:
    """Every (revision, release) pair that is refused, revisions in migration order."""
    protected = list(protect)
    return [
        block
        for contract in pending
        if contract.revision not in allow
        for entry in protected
        if (block := check(contract, entry)) is not None
    ]


@dataclass(frozen=True)
class Policy:
    """What the operator asked of this migration."""

    protect: tuple[Protected, ...] = ()
    allow: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Policy:
        return cls(
            protect=parse_protect(environ.get(PROTECT_ENV, "")),
            allow=parse_allow(environ.get(ALLOW_ENV, "")),
        )


def parse_allow(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def parse_protect(raw: str) -> tuple[Protected, ...]:
    """ITEMS_MIGRATION_PROTECT: a JSON list of {release, image, role, uses}; unknown keys are
    ignored, anything else malformed is an error (never a silently empty floor)."""
    if not raw.strip():
        return ()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise FloorConfigError(f"{PROTECT_ENV} is not JSON: {error}") from None
    if not isinstance(data, list):
        raise FloorConfigError(f"{PROTECT_ENV} must be a JSON list, not {type(data).__name__}")
    return tuple(_protected(index, entry) for index, entry in enumerate(data))


def _protected(index: int, entry: Any) -> Protected:
    where = f"{PROTECT_ENV}[{index}]"
    if not isinstance(entry, dict):
        raise FloorConfigError(f"{where} must be an object")
    for key in ("release", "image", "role"):
        if not isinstance(entry.get(key, ""), str):
            raise FloorConfigError(f"{where}.{key} must be a string")
    if not entry.get("image") and not entry.get("release"):
        raise FloorConfigError(f"{where} names neither a release nor an image")
    raw_uses = entry.get("uses")
    uses: dict[str, frozenset[str]] | None = None
    if raw_uses is not None:
        if not isinstance(raw_uses, dict) or not all(
            isinstance(columns, list) and all(isinstance(c, str) for c in columns)
            for columns in raw_uses.values()
        ):
            raise FloorConfigError(f"{where}.uses must be null or {{table: [column, ...]}}")
        uses = {str(table): frozenset(columns) for table, columns in raw_uses.items()}
    return Protected(
        release=entry.get("release", ""),
        image=entry.get("image", ""),
        role=entry.get("role", ""),
        uses=uses,
    )


# Reports: one compact JSON object, written to ITEMS_MIGRATION_REPORT_FILE at the end.


def blocked_report(found: Sequence[Block]) -> dict[str, Any]:
    first = found[0]
    report: dict[str, Any] = {
        "outcome": BLOCKED,
        "revision": first.revision,
        "removes": list(first.removes),
        "needs": list(first.needs),
        "image": first.protected.image,
        "release": first.protected.release,
        "role": first.protected.role,
        "why": first.why(),
    }
    if first.unknown:
        report["usesUnknown"] = True
    if len(found) > 1:
        report["moreBlocked"] = len(found) - 1
    return report


def done_report(
    outcome: str,
    *,
    before: str | None,
    head: str | None,
    contracts: Sequence[Contract],
    uses: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """``contracts``: the contract revisions at or below the database's head after the run."""
    return {
        "outcome": outcome,
        "from": before,
        "head": head,
        "uses": {table: sorted(columns) for table, columns in sorted(uses.items())},
        "removed": {
            "tables": sorted({t for c in contracts for t in c.tables}),
            "columns": sorted({col for c in contracts for col in c.columns}),
        },
        "needs": sorted({n for c in contracts for n in c.needs}),
        "contract": [c.revision for c in contracts],
    }


def failed_report(error: str) -> dict[str, Any]:
    return {"outcome": FAILED, "error": error}


def unreachable_report(error: str) -> dict[str, Any]:
    return {"outcome": UNREACHABLE, "error": error}


def encode(report: Mapping[str, Any], limit: int = REPORT_LIMIT) -> str:
    """Compact JSON shorter than ``limit`` bytes: first without "uses" ("usesTruncated": true),
    then with long strings and lists cut ("truncated": true), at worst the outcome alone."""

    def dump(value: Mapping[str, Any]) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    text = dump(report)
    if len(text.encode()) < limit:
        return text
    shorter = dict(report)
    if "uses" in shorter:
        del shorter["uses"]
        shorter["usesTruncated"] = True
        text = dump(shorter)
        if len(text.encode()) < limit:
            return text
    for keep in (64, 16, 4, 1, 0):
        cut = {**_cut(shorter, keep), "truncated": True}
        text = dump(cut)
        if len(text.encode()) < limit:
            return text
    return dump({"outcome": report.get("outcome", FAILED), "truncated": True})


def _cut(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= 8 * keep + 40 else value[: 8 * keep + 37] + "..."
    if isinstance(value, list):
        return [_cut(item, keep) for item in value[:keep]]
    if isinstance(value, dict):
        return {key: _cut(item, keep) for key, item in value.items()}
    return value
