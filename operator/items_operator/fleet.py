"""Operator upgrades in waves: a new operator version that renders different pod templates
must not restart every ItemService's pods at once.

decide.py recognises a rollout the spec did not ask for (the pod template the operator renders
changed; the spec's template inputs and the database did not) and starts it only when
`Observed.upgrade_slot` says so. `UpgradeWave` hands out those slots: at most `size`
ItemServices roll such a release at once, each judged by the normal verdict; the first one
rolled back halts the wave (nothing new starts; those rolling finish), since whatever broke it
will likely break the rest. A person's change is never held. A slot held longer than
SLOT_TIMEOUT (a rollout stuck on capacity, a paused ItemService) is freed so a few stuck
ItemServices cannot hold the fleet back for good.

State is in memory, rebuilt from what each ItemService's status says (`note`, before its pass):
a restarted or newly elected operator counts the rollouts already under way as soon as their
first pass ran. The halt is not rebuilt: a restart resumes the wave, and the next rollback halts
it again. Pure: the handlers feed it; times are the caller's monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from items_operator.status import IN_PROGRESS_OUTCOMES

DEFAULT_WAVE_SIZE = 10
SLOT_TIMEOUT = 900.0
TRIGGER_OPERATOR = "operator"


@dataclass
class UpgradeWave:
    size: int = DEFAULT_WAVE_SIZE
    # uid -> (release rolling out, monotonic time its slot was taken)
    rolling: dict[str, tuple[str, float]] = field(default_factory=dict)
    halted_by: str | None = None  # why nothing new starts, naming the ItemService

    def note(self, uid: str, status: dict[str, Any], now: float) -> None:
        """Before a pass: a rollout of this kind already under way (its newest history entry)
        holds a slot, whoever started it."""
        history = status.get("history") or []
        newest = history[-1] if history else {}
        release = newest.get("release")
        if (
            uid not in self.rolling
            and newest.get("trigger") == TRIGGER_OPERATOR
            and newest.get("outcome") in IN_PROGRESS_OUTCOMES
            and isinstance(release, str)
        ):
            self.rolling[uid] = (release, now)

    def may_start(self, uid: str, now: float | None = None) -> bool:
        """A slot for `uid`; at `now`, the slots of others held past SLOT_TIMEOUT are freed
        first (a paused ItemService's own pass, which would free it, may be a resync away)."""
        if uid in self.rolling:
            return True
        if now is not None:
            for other, (_, since) in list(self.rolling.items()):
                if _stuck(since, now):
                    del self.rolling[other]  # it goes on outside the count
        return self.halted_by is None and len(self.rolling) < self.size

    def observe(
        self, uid: str, name: str, upgrade: str | None, status: dict[str, Any], now: float
    ) -> None:
        """After each pass of `uid`: a started rollout takes a slot; a finished, superseded,
        stuck or rolled-back one frees it (a rollback halts the wave)."""
        target = status.get("targetRelease")
        if upgrade == "started" and isinstance(target, str):
            self.rolling.setdefault(uid, (target, now))
            return
        held = self.rolling.get(uid)
        if held is None:
            return
        release, since = held
        if status.get("failedRelease") == release:
            del self.rolling[uid]
            self.halted_by = self.halted_by or (
                f"{name} was rolled back from its operator-rendered release {release}"
            )
        elif status.get("lastGoodRelease") == release or target != release:
            del self.rolling[uid]
        elif _stuck(since, now):
            del self.rolling[uid]  # it goes on outside the count

    def forget(self, uid: str) -> None:
        """The ItemService is gone (or no longer served here)."""
        self.rolling.pop(uid, None)

    def describe(self) -> str:
        """For the message of a queued ItemService: stable while the wave rolls (a count
        here would rewrite every queued status on each change; it is a metric instead)."""
        if self.halted_by is not None:
            return (
                f"the wave is halted: {self.halted_by}; check that ItemService, then restart "
                "the operator to resume"
            )
        return f"at most {self.size} roll at once"


def _stuck(since: float, now: float) -> bool:
    """A slot held this long is a rollout stuck on capacity or a pause, not one rolling."""
    return now - since > SLOT_TIMEOUT
