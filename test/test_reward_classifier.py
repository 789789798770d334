"""The reward classifier (hilserl_ros.learning.reward_classifier): trained on simulated frames
whose true success is known, it finds success on episodes it never saw; it reads labelled
frames from bags as make train-reward-classifier does; its file loads without pickle and
predicts what the trained model predicted."""
import numpy as np
import pytest
from rclpy.serialization import serialize_message

from hilserl_ros import topics
from hilserl_ros.learning import reward_classifier as rc
from hilserl_ros.msg import Transition
from hilserl_ros.recording.bag import BagWriter
from hilserl_ros.vision.ros_image import to_image_msg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_frames():
    return rc.collect_sim("pick_cube", 40, seed=3, progress=False)


def test_simulated_frames_are_labelled_by_the_true_success(sim_frames):
    data = sim_frames
    assert set(data.frames) == {"front", "wrist"}
    assert all(v.shape == (len(data), 128, 128, 3) and v.dtype == np.uint8 for v in data.frames.values())
    # successes are held a few steps, so there are several per successful episode, and most frames fail
    assert 0.05 < data.labels.mean() < 0.4
    assert len(np.unique(data.episodes[data.labels])) >= 10


def test_it_finds_success_on_held_out_episodes(sim_frames, tmp_path):
    model, report = rc.train(sim_frames, held_out=0.25, seed=0)
    held = report["held_out"]
    assert held["success_frames"] > 10
    # a constant answer would score precision = the success share (~0.15) or recall 0
    assert held["precision"] >= 0.75 and held["recall"] >= 0.6, held
    path = model.save(str(tmp_path / "classifier.safetensors"), {"source": "test"})
    again = rc.RewardClassifier.load(path)
    frames = {k: v[:20] for k, v in sim_frames.frames.items()}
    assert np.allclose(again.probability(frames), model.probability(frames), atol=1e-6)
    assert again.info["source"] == "test" and again.cameras == ("front", "wrist")
    one = again.probability({k: v[0] for k, v in frames.items()})
    assert one.shape == (1,) and 0.0 <= one[0] <= 1.0
    with pytest.raises(ValueError, match="no frame of camera"):
        again.probability({"front": frames["front"]})


def test_a_file_that_is_not_a_classifier_is_refused(tmp_path):
    import safetensors.torch
    import torch

    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a reward classifier"):
        rc.RewardClassifier.load(str(path))


def test_frames_of_bags_are_labelled_by_how_their_episode_ended(tmp_path):
    """Episode 1 ends in success (the last transition's next frames are a success), episode 2
    in failure; frames of s_t come with each transition, s_{t+1} only at an episode's end."""
    rng = np.random.default_rng(0)

    def images():
        return [to_image_msg(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), "rgb8", frame_id=c)
                for c in ("front", "wrist")]

    writer = BagWriter(tmp_path / "demos")
    writer.add_topic(topics.TRANSITIONS, "hilserl_ros/msg/Transition")
    t_ns = 1
    for episode, final_reward in ((1, 1.0), (2, -0.3)):
        for step in range(4):
            last = step == 3
            msg = Transition(actor_id="actor", seq=t_ns, episode=episode, step=step, terminated=last,
                             reward=final_reward if last else 0.0, images=images())
            if last:
                msg.next_images = images()
            writer.write(topics.TRANSITIONS, t_ns, serialize_message(msg))
            t_ns += 1
    writer.close()
    data = rc.collect_bags([str(tmp_path / "demos")])
    assert len(data) == 10 and data.labels.tolist() == [False] * 4 + [True] + [False] * 5
    assert len(np.unique(data.episodes)) == 2
    with pytest.raises(ValueError, match="no transitions with camera frames"):
        empty = BagWriter(tmp_path / "empty")
        empty.add_topic(topics.TRANSITIONS, "hilserl_ros/msg/Transition")
        empty.close()
        rc.collect_bags([str(tmp_path / "empty")])


def test_the_classifier_reward_replaces_the_simulators_and_the_simulator_still_judges():
    from hilserl_ros.sim.env import make_env

    model = rc.from_policy_encoders(("front", "wrist"))  # an untrained head: P strictly in (0, 1)
    env = rc.ClassifierReward(make_env("pick_cube", seed=0, operator=False, observation="pixels"), model,
                              threshold=0.0)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    # the classifier says success at once: sparse reward 1, the episode ends, the simulator disagrees
    assert (reward, terminated, truncated) == (1.0, True, False) and not info["success"]
    assert 0.0 < info["classifier_p"] < 1.0 and env.false_successes == 1
    never = rc.ClassifierReward(make_env("pick_cube", seed=0, operator=False, observation="pixels"), model,
                                threshold=1.01)
    never.reset(seed=0)
    limit = never.unwrapped.config.max_episode_steps
    for step in range(1, limit + 1):
        _, reward, terminated, truncated, _ = never.step(np.zeros(4, np.float32))
        assert reward == 0.0 and not terminated and truncated == (step == limit)
