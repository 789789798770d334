"""Replay buffers: RLPD 50/50 batches, FIFO eviction, uint8 images, one writer and one reader
at once, and what they cost in memory."""
import threading

import numpy as np
import pytest

from hilserl_ros.learning.buffers import ReplayBuffer, sample_mixed


def add_n(buf, n, start=0, intervention=False):
    for i in range(start, start + n):
        buf.add([i] * buf.obs_dim, [0.5] * buf.action_dim, float(i), [i + 1] * buf.obs_dim, False,
                is_intervention=intervention)


def test_rlpd_batches_are_half_rl_half_demo_once_both_hold_data():
    rl, demo = ReplayBuffer(100, 2, 1, seed=0), ReplayBuffer(100, 2, 1, seed=1)
    add_n(rl, 50)
    only_rl = sample_mixed(rl, demo, 256)
    assert len(only_rl) == 256 and not only_rl.is_intervention.any()
    add_n(demo, 10, start=1000, intervention=True)
    for size in (256, 255):
        batch = sample_mixed(rl, demo, size)
        assert len(batch) == size
        assert int(batch.is_intervention.sum()) == size // 2
        assert (batch.obs[batch.is_intervention, 0] >= 1000).all()
    empty_rl = ReplayBuffer(10, 2, 1)
    assert bool(sample_mixed(empty_rl, demo, 32).is_intervention.all())


def test_fifo_eviction_keeps_the_newest_capacity_transitions():
    buf = ReplayBuffer(5, 1, 1, seed=0)
    add_n(buf, 12)
    assert len(buf) == 5 and buf.total_added == 12
    assert sorted(buf.obs[:, 0].tolist()) == [7, 8, 9, 10, 11]
    seen = set(buf.sample(500).obs[:, 0].tolist())
    assert seen == {7.0, 8.0, 9.0, 10.0, 11.0}


def test_checkpoint_state_restores_into_a_smaller_buffer_keeping_the_newest():
    buf = ReplayBuffer(8, 1, 1)
    add_n(buf, 11)
    small = ReplayBuffer(4, 1, 1)
    small.load_state_dict(buf.state_dict())
    assert sorted(small.obs[:, 0].tolist()) == [7, 8, 9, 10]
    assert small.total_added == 11


def test_images_are_stored_as_uint8_and_memory_is_what_the_arrays_cost(capsys):
    shapes = {"front": (128, 128, 3), "wrist": (128, 128, 3)}
    buf = ReplayBuffer(1000, 20, 4, shapes)
    frame = np.full((128, 128, 3), 200, np.uint8)
    buf.add(np.zeros(20), np.zeros(4), 1.0, np.zeros(20), False,
            images={"front": frame, "wrist": frame}, next_images={"front": frame, "wrist": frame})
    assert buf.images["front"].dtype == np.uint8
    batch = buf.sample(4)
    assert batch.images["front"].shape == (4, 3, 128, 128) and batch.images["front"].dtype.is_floating_point is False
    per_transition = 2 * 2 * 128 * 128 * 3 + (2 * 20 + 4 + 1 + 1) * 4 + 1
    assert buf.nbytes == 1000 * per_transition
    with capsys.disabled():
        print(f"\n[buffer] 2 cameras 128x128 uint8 + state 20: {per_transition / 1024:.1f} KiB per transition, "
              f"{buf.nbytes / 2**20:.0f} MiB per 1000 (float32 would be {4 * buf.nbytes / 2**20:.0f} MiB)")


@pytest.mark.parametrize("bad, why", [
    (dict(obs=np.zeros(3)), "observation has 3"),
    (dict(action=np.zeros(2)), "action has 2"),
    (dict(images={"front": np.zeros((8, 8, 3), np.float32)}), "uint8"),
    (dict(images={}), "images\\[front\\]"),
])
def test_malformed_transitions_are_refused(bad, why):
    buf = ReplayBuffer(4, 2, 1, {"front": (8, 8, 3)})
    frame = np.zeros((8, 8, 3), np.uint8)
    args = dict(obs=np.zeros(2), action=np.zeros(1), reward=0.0, next_obs=np.zeros(2), terminated=False,
                images={"front": frame}, next_images={"front": frame})
    args.update(bad)
    with pytest.raises(ValueError, match=why):
        buf.add(**args)
    assert len(buf) == 0


def test_one_thread_adds_while_another_samples_without_torn_transitions():
    buf = ReplayBuffer(500, 16, 4, seed=0)
    add_n(buf, 10)
    stop = threading.Event()
    errors = []

    def writer():
        i = 10
        while not stop.is_set():
            add_n(buf, 1, start=i)
            i += 1

    def reader():
        while not stop.is_set():
            b = buf.sample(64)
            # every field of a sampled transition must come from the same add()
            if not (b.obs == b.obs[:, :1]).all() or not (b.next_obs[:, 0] == b.obs[:, 0] + 1).all() \
                    or not (b.reward == b.obs[:, 0]).all():
                errors.append("torn transition")
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    threading.Event().wait(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert buf.total_added > 1000  # the writer was really running alongside
