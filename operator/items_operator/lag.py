"""What this process last wrote, per object, so a view that has not caught up with a write
(a watch-fed cache, Kopf's live body) never causes it a second time.

Each write is remembered with the object's resourceVersion in the view it was decided on
(`before`) and in the write's response (`after`). While the view still shows `before`, the
write is not in it yet: the pass waits for the watch event (at most PATIENCE seconds), and a
write equal to the remembered one is dropped as a repeat, however long the view lags. Once the
view shows any other version, the entry is forgotten: watch events of one object arrive in
order, so the view has moved past the pre-write state, and from then on it is the truth.
resourceVersions are only compared for equality, as the API conventions ask.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

Key = tuple[str, str]  # (kind, name); ("ItemService", name) for the status
PATIENCE = 10.0


@dataclass(frozen=True)
class Written:
    before: str | None  # None: the view did not have the object (a create)
    after: str | None
    what: object  # the action, or the status dict
    at: float  # monotonic seconds


@dataclass
class WriteMemory:
    patience: float = PATIENCE
    entries: dict[Key, Written] = field(default_factory=dict)

    def remember(
        self, key: Key, *, before: str | None, after: str | None, what: object, now: float
    ) -> None:
        if after is not None and after == before:
            self.entries.pop(key, None)  # the write changed nothing: nothing to wait for
            return
        self.entries[key] = Written(before, after, what, now)

    def wrote(self, key: Key, what: object, versions: Mapping[Key, str], after: str | None) -> None:
        """Remember a write decided on the view `versions` (now)."""
        self.remember(key, before=versions.get(key), after=after, what=what, now=time.monotonic())

    def settle(self, versions: Mapping[Key, str]) -> None:
        """Forget the writes the view has moved past."""
        for key in [k for k, w in self.entries.items() if versions.get(k) != w.before]:
            del self.entries[key]

    def waiting(self, versions: Mapping[Key, str], now: float | None = None) -> list[Key]:
        """Objects whose latest write the view does not show yet (within the patience)."""
        self.settle(versions)
        now = time.monotonic() if now is None else now
        return sorted(k for k, w in self.entries.items() if now - w.at < self.patience)

    def repeats(self, key: Key, what: object, versions: Mapping[Key, str]) -> bool:
        """This write was made already, and the view has not moved since it was decided."""
        written = self.entries.get(key)
        return written is not None and versions.get(key) == written.before and written.what == what
