"""The store of one informer (informers.py): reduced records by object and by the key the reads
ask with. Pure: no I/O, no clock; tests drive it with generated event sequences.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ObjectId = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class Entry:
    """One object as the cache keeps it."""

    object: ObjectId
    key: tuple[str, ...]  # what the reads ask by: (namespace, name) or (ns, instance, component)
    instance: str  # the ItemService it belongs to, by its instance label: whom to wake
    version: str  # resourceVersion: an unchanged object wakes nobody
    record: Any


# (old, new): None for an object added (old) or deleted (new); each side wakes its owner.
Change = tuple[Entry | None, Entry | None]


class Store:
    """Entries by object; those whose key is not their object id (pods, Jobs, revisions: by
    instance and component) by key too. A named kind's key is its id: no second dict per
    object (~230 bytes each, a third of an entry)."""

    def __init__(self) -> None:
        self.entries: dict[ObjectId, Entry] = {}
        self.by_key: dict[tuple[str, ...], dict[ObjectId, Entry]] = {}

    def put(self, entry: Entry) -> Change | None:
        """Add or replace; (old, new) if anything changed, else None."""
        old = self.entries.get(entry.object)
        if old is not None and old.version == entry.version and old.key == entry.key:
            return None
        if old is not None:
            self._unkey(old)
        self.entries[entry.object] = entry
        if entry.key != entry.object:
            self.by_key.setdefault(entry.key, {})[entry.object] = entry
        return old, entry

    def delete(self, obj: ObjectId) -> Change | None:
        """Forget; (the entry it held, None), or None if there was none."""
        old = self.entries.pop(obj, None)
        if old is None:
            return None
        self._unkey(old)
        return old, None

    def replace(self, listing: Mapping[ObjectId, Entry]) -> list[Change]:
        """Become `listing` (a fresh list); what was added, changed or deleted by it."""
        gone = [obj for obj in self.entries if obj not in listing]
        changes = [change for obj in gone if (change := self.delete(obj)) is not None]
        return changes + [c for e in listing.values() if (c := self.put(e)) is not None]

    def get(self, key: tuple[str, ...]) -> Iterator[Entry]:
        if len(key) == 2:  # an ObjectId
            named = self.entries.get((key[0], key[1]))
            if named is not None and named.key == key:
                return iter((named,))
        return iter((self.by_key.get(key) or {}).values())

    def names(self, namespace: str) -> set[str]:
        return {name for ns, name in self.entries if ns == namespace}

    def __len__(self) -> int:
        return len(self.entries)

    def _unkey(self, entry: Entry) -> None:
        same = self.by_key.get(entry.key)
        if same is not None:
            same.pop(entry.object, None)
            if not same:
                del self.by_key[entry.key]
