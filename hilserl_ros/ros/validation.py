"""Bad input is counted, logged once with what was wrong, and dropped; the node keeps going."""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable


class DropCounter:
    """Counts refused messages per reason and logs the first of each reason only.

    Bounded whatever a sender does: a reason is cut to ``MAX_REASON_CHARS``, and past
    ``MAX_REASONS`` distinct reasons (a reason may name the bad value) further new ones are
    counted together under ``OTHER`` and logged once."""

    MAX_REASONS = 64
    MAX_REASON_CHARS = 240
    OTHER = "(other reasons, past the first 64 kinds)"

    def __init__(self, logger, what: str):
        self._logger = logger
        self._what = what
        self.by_reason: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def drop(self, reason: str) -> None:
        if len(reason) > self.MAX_REASON_CHARS:  # a reason may quote what was sent: a sender picks its size
            reason = reason[:self.MAX_REASON_CHARS] + f"... ({len(reason)} characters)"
        if reason not in self.by_reason and len(self.by_reason) >= self.MAX_REASONS:
            reason = self.OTHER
        self.by_reason[reason] += 1
        if self.by_reason[reason] == 1:
            self._logger.warning(
                f"dropped a {self._what}: {reason} (further drops for this reason are counted, not logged)"
            )


def saturating(value: int, bits: int = 64) -> int:
    """``value`` clipped to an unsigned field of ``bits``: a counter reported on the wire never
    overflows the message (which would raise inside the publisher's thread)."""
    return max(0, min(int(value), (1 << bits) - 1))


def worth_telling(count: int) -> bool:
    """Whether the ``count``-th time a recurring condition happens is logged: the 1st, 10th,
    100th, 1000th and every 10000th, so a log says how often without a line every time."""
    return count in (1, 10, 100, 1000) or (count > 0 and count % 10000 == 0)


def non_finite(name: str, values: Iterable[float]) -> str | None:
    """A reason if any value is NaN or infinite, else None."""
    for i, v in enumerate(values):
        if not math.isfinite(v):
            return f"{name}[{i}] is {v}"
    return None
