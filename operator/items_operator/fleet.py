"""Operator upgrades in waves: a new operator version that renders different pod templates
must not restart every ItemService's pods at once.

decide.py recognises a rollout the spec did not ask for (the pod template the operator renders
changed, the image and database did not, and the spec's generation is the one that chose the
serving release) and starts it only when `Observed.upgrade_slot` says so. `UpgradeWave` hands
out those slots: at most `size` ItemServices roll such a release at once, each judged by the
normal verdict; the first one that is rolled back halts the wave (nothing new starts; those
rolling finish), since whatever broke it will likely break the rest. A person's change is never
held. The wave lives in the operator's memory: a restarted (or newly elected) operator starts
a new one, which the next rollback halts again. Pure: the handlers feed it each pass's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_WAVE_SIZE = 10


@dataclass
class UpgradeWave:
    size: int = DEFAULT_WAVE_SIZE
    # uid -> the release its operator-driven rollout is rolling out
    rolling: dict[str, str] = field(default_factory=dict)
    halted_by: str | None = None  # why nothing new starts, naming the ItemService

    def may_start(self, uid: str) -> bool:
        if uid in self.rolling:
            return True
        return self.halted_by is None and len(self.rolling) < self.size

    def observe(self, uid: str, name: str, upgrade: str | None, status: dict[str, Any]) -> None:
        """After each pass of `uid`: a started rollout takes a slot; a finished, superseded or
        rolled-back one frees it (a rollback halts the wave)."""
        target = status.get("targetRelease")
        if upgrade == "started" and isinstance(target, str):
            self.rolling[uid] = target
            return
        release = self.rolling.get(uid)
        if release is None:
            return
        if status.get("failedRelease") == release:
            del self.rolling[uid]
            self.halted_by = self.halted_by or (
                f"{name} was rolled back from the operator-rendered release {release} "
                f"({status.get('message', '')[:200]})"
            )
        elif status.get("lastGoodRelease") == release or target != release:
            del self.rolling[uid]

    def forget(self, uid: str) -> None:
        """The ItemService is gone (or no longer served here)."""
        self.rolling.pop(uid, None)

    def describe(self) -> str:
        if self.halted_by is not None:
            return (
                f"the operator-upgrade wave is halted: {self.halted_by}; restart the operator "
                "to resume after checking that ItemService (a person's spec change is never held)"
            )
        return f"{len(self.rolling)} of {self.size} ItemServices roll an operator upgrade now"
