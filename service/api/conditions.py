"""Conditional requests (RFC 9110 13): If-Match and If-None-Match on reads and writes.

Evaluation follows 13.2.2: If-Match first (strong comparison), then If-None-Match (weak
comparison). A precondition only matters for an item that exists: a missing item is a 404
whatever the headers say (13.2.1, the response would not be 2xx without them). A header
that is neither ``*`` nor a list of entity tags is a 400 problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.api import etags
from service.api.problems import ProblemError


def _parsed(name: str, header: str | None) -> etags.EntityTags | None:
    if header is None or not header.strip(" \t"):
        return None  # an empty list of entity tags is no precondition (RFC 9110 5.6.1)
    try:
        return etags.parse(header)
    except etags.MalformedPreconditionError:
        raise ProblemError(
            400,
            f'{name} must be * or a list of entity tags such as "v3"',
            problem="bad-precondition",
        ) from None


@dataclass(frozen=True)
class Conditions:
    """What a request's preconditions allow, as versions the database can check."""

    if_match: etags.EntityTags | None
    if_none_match: etags.EntityTags | None

    @property
    def expected_versions(self) -> frozenset[int] | None:
        """If-Match as a set of versions for the guarded write; None when any version will do."""
        if self.if_match is None or self.if_match.any:
            return None
        return self.if_match.strong

    @property
    def excluded_versions(self) -> frozenset[int]:
        if self.if_none_match is None or self.if_none_match.any:
            return frozenset()
        return self.if_none_match.weak_or_strong

    @property
    def refuses_any_version(self) -> bool:
        """If-None-Match: * on a write: only "if nothing is there", and items always are."""
        return self.if_none_match is not None and self.if_none_match.any

    def write_allowed(self, version: int) -> bool:
        if self.if_match is not None and not self.if_match.matches_strongly(version):
            return False
        return self.if_none_match is None or not self.if_none_match.matches_weakly(version)


def for_write(
    if_match: str | None, if_none_match: str | None, *, require_if_match: bool
) -> Conditions:
    conditions = Conditions(_parsed("If-Match", if_match), _parsed("If-None-Match", if_none_match))
    if conditions.if_match is None and require_if_match:
        raise ProblemError(
            428, "send If-Match with the item's ETag to change it", problem="precondition-required"
        )
    return conditions


@dataclass(frozen=True)
class ReadConditions:
    if_match: etags.EntityTags | None
    if_none_match: etags.EntityTags | None

    def outcome(self, version: int) -> int:
        """200, 304 (not modified) or 412 (If-Match fails) for the item's current version."""
        if self.if_match is not None and not self.if_match.matches_strongly(version):
            return 412
        if self.if_none_match is not None and self.if_none_match.matches_weakly(version):
            return 304
        return 200


def for_read(if_match: str | None, if_none_match: str | None) -> ReadConditions:
    return ReadConditions(_parsed("If-Match", if_match), _parsed("If-None-Match", if_none_match))
