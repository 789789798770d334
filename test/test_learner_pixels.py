"""/learner with camera observations: it reads the same description as the actor, refuses
transitions built with another, stores each frame once, acknowledges only what it holds, and
brings its image buffers back from a checkpoint with the frozen backbone's feature maps."""
import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter

from hilserl_ros import topics
from hilserl_ros.msg import Transition
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos
from hilserl_ros.vision.ros_image import to_image_msg
from ros_harness import wait_for

pytestmark = pytest.mark.ros
PIXELS = load_observation("reach", "pixels")


def transition(seq, episode=1, last=False, spec=PIXELS, size=128):
    frame = np.full((size, size, 3), seq, np.uint8)
    msg = Transition(actor_id="cam", session=7, seq=seq, episode=episode, step=seq - 1,
                     observation=[0.01 * seq] * spec.obs_dim, next_observation=[0.01 * (seq + 1)] * spec.obs_dim,
                     action=[0.1, 0.0, 0.0, 0.0], reward=0.0, terminated=False, truncated=last,
                     is_intervention=False, observation_spec=spec.fingerprint)
    msg.images = [to_image_msg(frame, "rgb8")] * len(spec.cameras)
    if last:
        msg.next_images = [to_image_msg(np.full((size, size, 3), seq + 1, np.uint8), "rgb8")] * len(spec.cameras)
    return msg


def learner_node(ros, tmp_path, spin=True):
    from hilserl_ros.nodes.learner_node import LearnerNode

    overrides = [Parameter("observation", value="pixels"), Parameter("checkpoint_dir", value=str(tmp_path / "ckpt")),
                 Parameter("hidden_dims", value=[32, 32]), Parameter("rl_capacity", value=1000),
                 Parameter("demo_capacity", value=200), Parameter("training_starts", value=100_000)]
    node = LearnerNode(context=ros.context, parameter_overrides=overrides)
    return ros.add(node) if spin else node


def stop(learner):
    learner._stop.set()
    learner._trainer.join(timeout=30)


def test_pixel_transitions_are_paired_refused_when_foreign_and_acknowledged_when_held(ros, tmp_path):
    learner = learner_node(ros, tmp_path)
    peer = ros.node("camera_actor")
    pub = peer.create_publisher(Transition, topics.TRANSITIONS, qos.TRANSITIONS)
    ros.wait_for_subscribers(pub)
    try:
        pub.publish(transition(1, spec=load_observation("reach", "state")))  # the state actor's
        pub.publish(transition(2, size=64))  # a frame the description does not have
        wait_for(lambda: learner.drops.total == 2, 30, "two refusals")
        for seq in range(3, 7):
            pub.publish(transition(seq))
        wait_for(lambda: learner.received == 4, 30, "four transitions")
        link = ("cam", 7)
        # 3, 4, 5 are paired (their s_{t+1} frame came with the next one); 6 waits for 7's
        assert len(learner.rl) == 3 and learner.rl.frames.added == 4
        assert learner._held(link, learner.links[link]) == 0  # 1 and 2 were refused: nothing below 3 is held
        pub.publish(transition(1))  # the refused seqs come again, right this time
        pub.publish(transition(2))
        pub.publish(transition(7, last=True))
        wait_for(lambda: len(learner.rl) == 7, 30, "the episode complete")
        assert learner._held(link, learner.links[link]) == 7 and learner.rl.frames.added == 9
        batch = learner.rl.sample(64)
        # the frozen backbone's map of each frame, cached (float16) ...
        assert batch.features["front"].shape == (64, learner.agent.encoder.cache_dim)
        assert batch.features["front"].dtype == torch.float16
        assert not learner.rl.frames.keeps_frames  # ... and kept instead of the frames
        frames_held = learner.rl.frames.capacity + learner.demo.frames.capacity
        assert learner.rl.nbytes + learner.demo.nbytes < frames_held * 12_000  # 10 KiB per frame, not 48
        path = learner.save_checkpoint()
    finally:
        stop(learner)  # the harness destroys it
    resumed = learner_node(ros, tmp_path, spin=False)
    try:
        assert len(resumed.rl) == 7 and resumed.agent.config.freeze_encoder
        again = resumed.rl.sample(64)
        original = {int(round(o * 100)): f for o, f in zip(batch.obs[:, 0].tolist(), batch.features["front"])}
        for o, f in zip(again.obs[:, 0].tolist(), again.features["front"]):
            if int(round(o * 100)) in original:  # same frame, same features after the restart
                assert np.allclose(f.numpy(), original[int(round(o * 100))].numpy(), atol=1e-5)
    finally:
        stop(resumed)
        resumed.destroy_node()
    assert path


def test_a_step_that_missed_its_period_is_not_trained_on_but_pairs_and_is_acknowledged(ros, tmp_path):
    """command_late (the simulation ran the step's period without its action): the learner keeps
    it out of the buffers, yet its frames complete the step before and its seq is held, so
    nothing waits for it and the actor's spool drains."""
    learner = learner_node(ros, tmp_path)
    peer = ros.node("camera_actor")
    pub = peer.create_publisher(Transition, topics.TRANSITIONS, qos.TRANSITIONS)
    ros.wait_for_subscribers(pub)
    try:
        for seq in range(1, 5):
            msg = transition(seq, last=seq == 4)
            msg.command_late = seq == 2
            pub.publish(msg)
        link = ("cam", 7)
        wait_for(lambda: learner.received == 4 and link in learner.links
                 and learner._held(link, learner.links[link]) == 4, 30, "four transitions held")
        assert len(learner.rl) == 3 and learner.late_steps == 1  # 1 (paired with 2's frame), 3 and 4
        assert not learner.drops.total
    finally:
        stop(learner)
