"""The actor -> learner link without loss (no ROS here): sequence tracking and the actor's spool.

Every transition carries (actor_id, session, seq), seq counting from 1 in each actor session.

- The learner keeps a :class:`SequenceTracker` per session: it stores a transition only the
  first time its seq arrives (a re-sent one is a duplicate) and knows the highest seq below
  which it has everything (``contiguous``). That number, taken when a checkpoint is written,
  is what the learner acknowledges as *stored*: it survives a learner crash.
- The actor writes every transition it publishes to a :class:`TransitionSpool` on disk and
  forgets it only once acknowledged as stored. When the learner comes back after a restart it
  acknowledges its checkpoint's numbers, and the actor re-sends everything after them.

So a transition reaches the learner's buffers exactly once whatever dies when: the learner
(the spool re-sends), the actor (the spool is on disk and a restarted actor re-sends the
previous session's remainder), or both.
"""
from __future__ import annotations

import os
import re
import struct
import threading
from dataclasses import dataclass, field

RECORD_HEADER = struct.Struct("<QI")  # seq, length of the serialized transition
SEGMENT_NAME = re.compile(r"^(?P<session>\d+)_(?P<first>\d+)\.spool$")


# What a well-behaved actor can send; anything else is refused with the reason (a sender on the
# DDS domain is not necessarily ours). An actor counts its steps from 1: 2**53 is 285,000 years
# at 1 kHz (and the last integer a float or JSON reader keeps exactly).
MAX_SEQ = 2 ** 53
# How far a session's seq may run past the last one held without a hole. An actor re-sends what
# its spool holds in order, so a bigger jump is not one of its transitions; it would also make
# the gap count (and the tracker's memory) whatever the sender likes. 10 M: 11 days at 10 Hz.
MAX_SEQ_AHEAD = 10_000_000
MAX_SESSIONS = 4096  # actor sessions one learner tracks (a restart of an actor is a new session)


def sequence_error(seq: int, session: int, tracker: "SequenceTracker | None", sessions: int) -> str | None:
    """Why (``seq``, ``session``) cannot come from an actor (None if it can). ``tracker`` is the
    session's, None for a session not seen yet; ``sessions`` is how many are tracked."""
    if session == 0:
        return "session 0 (an actor's session is its start time in ns)"
    if seq == 0:
        return "seq 0 (an actor numbers its transitions from 1)"
    if seq > MAX_SEQ:
        return "seq above 2**53 (no actor counts that far)"
    if tracker is None:
        if sessions >= MAX_SESSIONS:
            return f"a new actor session past the {MAX_SESSIONS} this learner tracks (restart the learner)"
        base = 0
    else:
        base = tracker.contiguous
    if seq > base + MAX_SEQ_AHEAD:
        return (f"seq more than {MAX_SEQ_AHEAD} past the session's last contiguous seq (an actor re-sends in "
                f"order; restart the actor for a new session)")
    return None


class SequenceTracker:
    """Which sequence numbers of one actor session the learner holds."""

    def __init__(self, contiguous: int = 0, above: set[int] | None = None):
        self.contiguous = contiguous  # every seq <= this has been accepted
        self.above: set[int] = set(above or ())  # accepted seqs past a hole (arrived out of order)

    def accept(self, seq: int) -> bool:
        """True the first time ``seq`` arrives (store it), False for a duplicate."""
        if seq <= self.contiguous or seq in self.above:
            return False
        self.above.add(seq)
        while self.contiguous + 1 in self.above:
            self.contiguous += 1
            self.above.discard(self.contiguous)
        return True

    @property
    def highest(self) -> int:
        return max(self.above, default=self.contiguous)

    @property
    def missing(self) -> int:
        """Seqs below the highest seen that have not arrived (lost or still to be re-sent)."""
        return self.highest - self.contiguous - len(self.above)

    def state(self) -> dict:
        return {"contiguous": self.contiguous, "above": sorted(self.above)}

    @classmethod
    def from_state(cls, state: dict) -> "SequenceTracker":
        return cls(int(state["contiguous"]), {int(s) for s in state.get("above", [])})


@dataclass
class _Segment:
    path: str
    session: int
    first: int
    last: int = 0
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (offset, length)
    size: int = 0


class SpoolFull(RuntimeError):
    pass


class TransitionSpool:
    """Serialized transitions kept on disk until the learner has them in a checkpoint.

    Append-only segment files ``<session>_<first seq>.spool`` of (seq, length, bytes) records;
    a segment is deleted once every record in it is acknowledged as stored. Only an index is
    kept in memory, so a learner away for hours costs disk, not RAM (bounded by ``max_bytes``:
    past it the oldest segment is dropped and counted as ``lost``, with the caller told).
    A restarted actor opens the same directory and finds what its previous session left.
    """

    def __init__(self, directory: str, max_bytes: int = 2 << 30, segment_records: int = 1000):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_records = segment_records
        self.lost = 0
        self._segments: list[_Segment] = []
        self._lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)
        self._load()

    # -- disk ---------------------------------------------------------------------------------
    def _load(self) -> None:
        for name in sorted(os.listdir(self.directory), key=_segment_order):
            match = SEGMENT_NAME.match(name)
            if not match:
                continue
            segment = _Segment(os.path.join(self.directory, name), int(match["session"]), int(match["first"]))
            with open(segment.path, "rb") as fh:
                data = fh.read()
            offset = 0
            while offset + RECORD_HEADER.size <= len(data):
                seq, length = RECORD_HEADER.unpack_from(data, offset)
                start = offset + RECORD_HEADER.size
                if start + length > len(data):
                    break  # the last record was cut short by a kill: it never left, drop it
                segment.offsets[seq] = (start, length)
                segment.last = max(segment.last, seq)
                offset = start + length
            if offset < len(data):
                with open(segment.path, "r+b") as fh:
                    fh.truncate(offset)
            segment.size = offset
            if segment.offsets:
                self._segments.append(segment)
            else:
                os.remove(segment.path)

    def add(self, session: int, seq: int, data: bytes) -> None:
        with self._lock:
            segment = self._segments[-1] if self._segments else None
            if segment is None or segment.session != session or len(segment.offsets) >= self.segment_records:
                segment = _Segment(os.path.join(self.directory, f"{session}_{seq}.spool"), session, seq)
                self._segments.append(segment)
            with open(segment.path, "ab") as fh:
                fh.write(RECORD_HEADER.pack(seq, len(data)))
                fh.write(data)  # the OS keeps it if this process is killed right after
            segment.offsets[seq] = (segment.size + RECORD_HEADER.size, len(data))
            segment.size += RECORD_HEADER.size + len(data)
            segment.last = max(segment.last, seq)
            self._enforce_limit()

    def _enforce_limit(self) -> None:
        while sum(s.size for s in self._segments) > self.max_bytes and len(self._segments) > 1:
            oldest = self._segments.pop(0)
            self.lost += len(oldest.offsets)
            os.remove(oldest.path)

    def acknowledge(self, session: int, stored_seq: int) -> None:
        """The learner has every seq <= ``stored_seq`` of ``session`` in a checkpoint."""
        with self._lock:
            keep = []
            for segment in self._segments:
                if segment.session == session and segment.last <= stored_seq:
                    os.remove(segment.path)
                else:
                    keep.append(segment)
            self._segments = keep

    # -- reading ------------------------------------------------------------------------------
    def sessions(self) -> dict[int, int]:
        """session -> highest seq spooled."""
        with self._lock:
            out: dict[int, int] = {}
            for segment in self._segments:
                out[segment.session] = max(out.get(segment.session, 0), segment.last)
            return out

    def after(self, session: int, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` spooled transitions of ``session`` with a seq above ``seq``, in order."""
        with self._lock:
            found: list[tuple[int, bytes]] = []
            for segment in self._segments:
                if segment.session != session or segment.last <= seq:
                    continue
                wanted = sorted(s for s in segment.offsets if s > seq)[: limit - len(found)]
                if not wanted:
                    continue
                with open(segment.path, "rb") as fh:
                    for s in wanted:
                        offset, length = segment.offsets[s]
                        fh.seek(offset)
                        found.append((s, fh.read(length)))
                if len(found) >= limit:
                    break
            return found

    def __len__(self) -> int:
        with self._lock:
            return sum(len(s.offsets) for s in self._segments)

    @property
    def bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._segments)


def _segment_order(name: str) -> tuple[int, int]:
    match = SEGMENT_NAME.match(name)
    return (int(match["session"]), int(match["first"])) if match else (0, 0)
