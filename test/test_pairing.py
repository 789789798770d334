"""Frames that cross the wire once (hilserl_ros.learning.pairing): the learner rebuilds each
transition's s_{t+1} frame from the next transition, stores every frame once, survives re-sends
out of order, and never claims to hold a transition that still waits for its frames."""
import numpy as np
import torch

from hilserl_ros.learning.buffers import ReplayBuffer
from hilserl_ros.learning.pairing import FramePairer, Step

SHAPES = {"front": (4, 4, 3)}


def frame(value):
    return {"front": np.full((4, 4, 3), value, np.uint8)}


def step(seq, episode=1, last=False, human=False):
    # the frame of s_t shows seq; the episode's last step brings s_{t+1} (seq + 1)
    return Step(seq, episode, np.array([seq], np.float32), np.zeros(1, np.float32), 0.0,
                np.array([seq + 1], np.float32), last, human, frame(seq), frame(seq + 1) if last else None)


def buffers():
    return ReplayBuffer(50, 1, 1, SHAPES, seed=0), ReplayBuffer(50, 1, 1, SHAPES, seed=1)


def assert_paired(buffer):
    batch = buffer.sample(200)
    assert torch.equal(batch.images["front"][:, 0, 0, 0].float(), batch.obs[:, 0])
    assert torch.equal(batch.next_images["front"][:, 0, 0, 0].float(), batch.next_obs[:, 0])


def test_an_episode_in_order_stores_each_frame_once_and_pairs_every_transition():
    rl, _ = buffers()
    pairer = FramePairer()
    for seq in range(1, 10):
        pairer.add("a", step(seq), (rl,))
        assert len(rl) == seq - 1 and pairer.unheld("a") == {seq}  # waits for its successor's frame
    pairer.add("a", step(10, last=True), (rl,))
    assert len(rl) == 10 and pairer.unheld("a") == set()
    assert rl.frames.added == 11  # 10 transitions, 11 frames
    assert_paired(rl)


def test_interventions_go_to_the_demo_buffer_with_their_own_frames():
    rl, demo = buffers()
    pairer = FramePairer()
    for seq in range(1, 6):
        human = seq in (2, 3)
        pairer.add("a", step(seq, last=seq == 5, human=human), (rl, demo) if human else (rl,))
    assert len(rl) == 5 and len(demo) == 2
    assert demo.frames.added == 3  # s_2, s_3 and s_4 (the successor's frame, though step 4 is the policy's)
    assert_paired(rl)
    assert_paired(demo)
    assert sorted(set(demo.sample(50).obs[:, 0].tolist())) == [2.0, 3.0]


def test_a_resend_out_of_order_completes_both_and_a_new_episode_does_not_borrow_frames():
    rl, _ = buffers()
    pairer = FramePairer()
    pairer.add("a", step(1), (rl,))
    pairer.add("a", step(3), (rl,))  # 2 was lost and comes again later
    assert len(rl) == 0 and pairer.unheld("a") == {1, 3}
    pairer.add("a", step(2), (rl,))
    assert len(rl) == 2 and pairer.unheld("a") == {3}
    pairer.add("a", step(4, last=True), (rl,))
    assert len(rl) == 4
    pairer.add("a", step(5, episode=2), (rl,))  # seq 5 starts episode 2: seq 4 carried its own s_{t+1}
    assert len(rl) == 4 and pairer.unheld("a") == {5}
    assert_paired(rl)


def test_links_are_kept_apart():
    rl, _ = buffers()
    pairer = FramePairer()
    pairer.add("a", step(1), (rl,))
    pairer.add("b", step(2), (rl,))  # another actor's seq 2 does not complete a's seq 1
    assert len(rl) == 0 and pairer.unheld("a") == {1} and pairer.unheld("b") == {2}
