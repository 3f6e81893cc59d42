"""Entity tags carry the item's version: a strong validator for If-Match / If-None-Match.

Comparison is the string comparison of RFC 9110 8.8.3.2: ``"v01"`` is not ``"v1"``. A tag
names a version only when its text is exactly what ``etag_for`` would produce for it; any
other well-formed tag names no version and so never matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text.
# Commas are etagc, so a list is scanned tag by tag, never split on ",".
_LIST_ITEM = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(,|\Z)')
# The one spelling of each version, ASCII digits only, no leading zero, within the id range.
_VERSION_TAG = re.compile(r"v([1-9][0-9]{0,17})", re.ASCII)


class MalformedPreconditionError(ValueError):
    """The header is not ``*`` nor a list of entity tags."""


def etag_for(version: int) -> str:
    return f'"v{version}"'


@dataclass(frozen=True)
class EntityTags:
    """A parsed If-Match or If-None-Match: ``*`` or the versions the strong/weak tags name."""

    any: bool
    strong: frozenset[int]  # versions named by strong tags
    weak_or_strong: frozenset[int]  # versions named by any tag (weak comparison)

    def matches_strongly(self, version: int) -> bool:
        return self.any or version in self.strong

    def matches_weakly(self, version: int) -> bool:
        return self.any or version in self.weak_or_strong


def parse(header: str) -> EntityTags:
    """Parse ``*`` or ``#entity-tag``; raise MalformedPreconditionError otherwise."""
    if header.strip(" \t") == "*":
        return EntityTags(any=True, strong=frozenset(), weak_or_strong=frozenset())
    strong: set[int] = set()
    every: set[int] = set()
    position, named = 0, 0
    while position < len(header):
        match = _LIST_ITEM.match(header, position)
        if match is None:
            raise MalformedPreconditionError(header)
        if match.group(2) is not None:
            named += 1
            version = _VERSION_TAG.fullmatch(match.group(2))
            if version is not None:
                every.add(int(version.group(1)))
                if match.group(1) is None:
                    strong.add(int(version.group(1)))
        if match.end() == position:  # only at the end of the header: nothing left to read
            break
        position = match.end()
    if named == 0:
        raise MalformedPreconditionError(header)
    return EntityTags(any=False, strong=frozenset(strong), weak_or_strong=frozenset(every))
