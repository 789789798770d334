"""Replay buffers: RLPD 50/50 batches, FIFO eviction, uint8 images, one writer and one reader
at once, and what they cost in memory."""
import threading

import numpy as np
import pytest
import torch

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


def test_frames_are_stored_once_as_uint8_and_memory_is_what_the_arrays_cost(capsys):
    shapes = {"front": (128, 128, 3), "wrist": (128, 128, 3)}
    buf = ReplayBuffer(1000, 9, 4, shapes)
    frames = [{k: np.full((128, 128, 3), i, np.uint8) for k in shapes} for i in range(11)]
    numbers = [buf.add_frames(f) for f in frames]
    for t in range(10):  # one episode: s_{t+1}'s frame is the next transition's s_t frame
        buf.add(np.full(9, t), np.zeros(4), 1.0, np.full(9, t + 1), t == 9, frame=numbers[t], next_frame=numbers[t + 1])
    assert buf.frames.added == 11  # 10 transitions, 11 frames: none stored twice
    batch = buf.sample(64)
    assert batch.images["front"].shape == (64, 3, 128, 128) and batch.images["front"].dtype == torch.uint8
    # every sampled transition got its own frames: pixel value t at s_t, t + 1 at s_{t+1}
    t = batch.obs[:, 0].long()
    assert torch.equal(batch.images["wrist"][:, 0, 0, 0].long(), t)
    assert torch.equal(batch.next_images["front"][:, 0, 0, 0].long(), t + 1)
    frame_bytes = 2 * 128 * 128 * 3
    expected = 1000 * ((2 * 9 + 4 + 2) * 4 + 1 + 16) + buf.frames.capacity * frame_bytes
    assert buf.nbytes == expected == ReplayBuffer.bytes_needed(1000, 9, 4, shapes)
    assert buf.frames.capacity == 1251  # 1.25 frames per transition: episodes of 4 steps or more lose nothing
    with capsys.disabled():
        print(f"\n[buffer] 2 cameras 128x128 uint8, each frame once: {buf.nbytes / 1000 / 1024:.1f} KiB per "
              f"transition (two frames per transition would be {2 * frame_bytes / 1024:.0f} KiB); a 200k buffer "
              f"needs {ReplayBuffer.bytes_needed(200_000, 9, 4, shapes) / 1e9:.1f} GB")


def test_transitions_whose_frames_were_overwritten_leave_the_buffer():
    buf = ReplayBuffer(10, 1, 1, {"front": (4, 4, 3)}, frame_capacity=6, seed=0)
    frame = np.zeros((4, 4, 3), np.uint8)
    for i in range(8):  # one-step episodes: two new frames each, more than the frame ring holds
        buf.add([i], [0.0], 0.0, [i], True, images={"front": frame}, next_images={"front": frame})
    # 16 frames added, the last 6 held: only the transitions whose two frames are both held remain
    assert len(buf) == 3 and buf.frames.oldest == 10
    assert set(buf.sample(200).obs[:, 0].tolist()) == {5.0, 6.0, 7.0}
    with pytest.raises(ValueError, match="not held"):
        buf.add([9], [0.0], 0.0, [9], False, frame=0, next_frame=15)


def test_cached_features_replace_images_in_batches_and_survive_a_checkpoint():
    calls = []

    def featurize(images):
        calls.append(1)
        return {"front": np.full(3, float(images["front"][0, 0, 0]), np.float32)}

    buf = ReplayBuffer(20, 1, 1, {"front": (4, 4, 3)}, featurize=featurize, feature_dim=3)
    numbers = [buf.add_frames({"front": np.full((4, 4, 3), i, np.uint8)}) for i in range(6)]
    for t in range(5):
        buf.add([t], [0.0], 0.0, [t + 1], False, frame=numbers[t], next_frame=numbers[t + 1])
    assert len(calls) == 6  # once per frame, not per sample
    batch = buf.sample(32)
    assert batch.images == {} and batch.features["front"].shape == (32, 3)
    assert torch.equal(batch.features["front"][:, 0], batch.obs[:, 0])
    assert torch.equal(batch.next_features["front"][:, 0], batch.obs[:, 0] + 1)
    restored = ReplayBuffer(20, 1, 1, {"front": (4, 4, 3)}, featurize=featurize, feature_dim=3)
    restored.load_state_dict(buf.state_dict())
    again = restored.sample(32)
    assert len(restored) == 5 and torch.equal(again.next_features["front"][:, 0], again.obs[:, 0] + 1)


def test_a_frozen_encoder_buffer_keeps_features_only_and_a_200k_buffer_of_two_cameras_fits(capsys):
    shapes = {"front": (128, 128, 3), "wrist": (128, 128, 3)}

    def featurize(images):  # stands for the frozen encoder: 256 numbers per camera
        return {k: np.full(256, float(v[0, 0, 0]), np.float32) for k, v in images.items()}

    buf = ReplayBuffer(50, 9, 4, shapes, featurize=featurize, feature_dim=256, keep_frames=False)
    numbers = [buf.add_frames({k: np.full((128, 128, 3), i, np.uint8) for k in shapes}) for i in range(11)]
    for t in range(10):
        buf.add(np.full(9, t), np.zeros(4), 1.0, np.full(9, t + 1), t == 9, frame=numbers[t], next_frame=numbers[t + 1])
    assert buf.frames.frames == {}  # no pixels kept
    with pytest.raises(ValueError, match=r"images\[front\] must be uint8\[128, 128, 3\]"):
        buf.add_frames({k: np.zeros((64, 64, 3), np.uint8) for k in shapes})  # still checked on arrival
    batch = buf.sample(64)
    assert torch.equal(batch.features["wrist"][:, 0], batch.obs[:, 0])
    assert torch.equal(batch.next_features["front"][:, 0], batch.obs[:, 0] + 1)
    # a checkpoint carries the features, and a features-only buffer is filled from it
    state = buf.state_dict()
    assert "features/front" in state and "frames/front" not in state
    restored = ReplayBuffer(50, 9, 4, shapes, featurize=featurize, feature_dim=256, keep_frames=False)
    restored.load_state_dict(state)
    again = restored.sample(64)
    assert len(restored) == 10 and torch.equal(again.next_features["wrist"][:, 0], again.obs[:, 0] + 1)
    # ... but not a buffer that must hold frames (an encoder being trained): refused with the reason
    with pytest.raises(ValueError, match="holds frozen-encoder features, not frames"):
        ReplayBuffer(50, 9, 4, shapes).load_state_dict(state)
    with pytest.raises(ValueError, match="needs featurize"):
        ReplayBuffer(50, 9, 4, shapes, keep_frames=False)
    assert buf.nbytes == ReplayBuffer.bytes_needed(50, 9, 4, shapes, feature_dim=256, keep_frames=False)
    big = ReplayBuffer.bytes_needed(200_000, 9, 4, shapes, feature_dim=256, keep_frames=False)
    assert big < 1e9 < 24e9 < ReplayBuffer.bytes_needed(200_000, 9, 4, shapes)
    with capsys.disabled():
        print(f"\n[buffer] 200k transitions of two 128x128 cameras: {big / 1e9:.2f} GB with frozen-encoder features, "
              f"{ReplayBuffer.bytes_needed(200_000, 9, 4, shapes) / 1e9:.1f} GB with uint8 frames")


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
