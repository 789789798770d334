"""The lossless actor -> learner link's pieces: the learner's sequence tracking (duplicates
refused, holes remembered) and the actor's on-disk spool (kept until stored, re-read after a
restart, bounded)."""
import os
import random

import pytest

from hilserl_ros.learning.link import SequenceTracker, TransitionSpool


def test_tracker_accepts_each_seq_once_in_any_order():
    tracker = SequenceTracker()
    order = list(range(1, 201))
    random.Random(3).shuffle(order)
    accepted = [s for s in order + order[:50] if tracker.accept(s)]
    assert sorted(accepted) == list(range(1, 201))  # the 50 repeats were refused
    assert tracker.contiguous == 200 and not tracker.above and tracker.missing == 0


def test_tracker_knows_its_holes_and_survives_a_checkpoint():
    tracker = SequenceTracker()
    for seq in (1, 2, 3, 7, 8):
        tracker.accept(seq)
    assert tracker.contiguous == 3 and tracker.missing == 3  # 4, 5, 6
    restored = SequenceTracker.from_state(tracker.state())
    assert not restored.accept(7) and restored.accept(4) and restored.accept(5) and restored.accept(6)
    assert restored.contiguous == 8


def test_spool_keeps_until_stored_and_resends_in_order(tmp_path):
    spool = TransitionSpool(str(tmp_path), segment_records=10)
    for seq in range(1, 36):
        spool.add(100, seq, f"t{seq}".encode())
    assert [s for s, _ in spool.after(100, 12, limit=5)] == [13, 14, 15, 16, 17]
    assert spool.after(100, 12, limit=1)[0][1] == b"t13"
    spool.acknowledge(100, 25)  # segments wholly <= 25 go; the one holding 21..30 stays
    assert sorted(os.listdir(tmp_path)) == ["100_21.spool", "100_31.spool"]
    assert [s for s, _ in spool.after(100, 25, limit=100)] == list(range(26, 36))


def test_a_restarted_actor_finds_the_previous_sessions_remainder(tmp_path):
    spool = TransitionSpool(str(tmp_path))
    for seq in range(1, 6):
        spool.add(1, seq, bytes([seq]) * 100)
    with open(tmp_path / "1_1.spool", "ab") as fh:
        fh.write(b"\x06\x00\x00\x00\x00\x00\x00\x00\x64\x00")  # a record cut short by a kill
    again = TransitionSpool(str(tmp_path))
    assert again.sessions() == {1: 5}
    assert [data for _, data in again.after(1, 0, 10)] == [bytes([s]) * 100 for s in range(1, 6)]
    again.add(2, 1, b"new session")
    assert again.sessions() == {1: 5, 2: 1}


def test_spool_is_bounded_and_counts_what_it_dropped(tmp_path):
    spool = TransitionSpool(str(tmp_path), max_bytes=10_000, segment_records=10)
    for seq in range(1, 101):
        spool.add(7, seq, b"x" * 200)
    assert spool.bytes <= 10_000 + 10 * 212
    assert spool.lost > 0 and len(spool) + spool.lost == 100
    assert spool.after(7, 0, 1)[0][0] == spool.lost + 1  # the oldest went first


@pytest.mark.parametrize("stored", [0, 5])
def test_acknowledging_another_session_changes_nothing(tmp_path, stored):
    spool = TransitionSpool(str(tmp_path))
    spool.add(1, 1, b"a")
    spool.acknowledge(2, 10 + stored)
    assert len(spool) == 1
