"""Entity tags carry the item's version: a strong validator for If-Match / If-None-Match."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')


def etag_for(version: int) -> str:
    return f'"v{version}"'


@dataclass(frozen=True)
class Precondition:
    """A parsed If-Match: any version (``*``) or a set of versions."""

    any_version: bool
    versions: frozenset[int]

    def single_version(self) -> int | None:
        return next(iter(self.versions)) if len(self.versions) == 1 else None


def parse_if_match(header: str) -> Precondition:
    """Weak tags never match under If-Match (strong comparison, RFC 9110 13.1.1)."""
    if header.strip() == "*":
        return Precondition(any_version=True, versions=frozenset())
    versions: set[int] = set()
    for part in header.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None or match.group(1):
            continue
        tag = match.group(2)
        if tag.startswith("v") and tag[1:].isdigit() and len(tag) < 20:
            versions.add(int(tag[1:]))
    return Precondition(any_version=False, versions=frozenset(versions))


def none_match(header: str, version: int) -> bool:
    """True when If-None-Match names the current version (weak comparison) or is ``*``."""
    if header.strip() == "*":
        return True
    for part in header.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is not None and match.group(2) == f"v{version}":
            return True
    return False
