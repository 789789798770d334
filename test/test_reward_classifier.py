"""The reward classifier (hilserl_ros.learning.reward_classifier): trained on simulated frames
whose true success is known, it finds success on episodes it never saw; it reads labelled
frames from bags as make train-reward-classifier does (vetoed successes become failures); its
file loads without pickle and predicts what the trained model predicted; the operator's vetoes
teach it its false successes without losing the true ones."""
import numpy as np
import pytest
from rclpy.serialization import serialize_message

from hilserl_ros import topics
from hilserl_ros.learning import reward_classifier as rc
from hilserl_ros.msg import RewardVeto, Transition
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


@pytest.fixture(scope="module")
def trained(sim_frames):
    return rc.train(sim_frames, held_out=0.25, seed=0)


def test_it_finds_success_on_held_out_episodes(sim_frames, trained, tmp_path):
    model, report = trained
    held = report["held_out"]
    assert held["success_frames"] > 10
    # a constant answer would score precision = the success share (~0.15) or recall 0
    assert held["precision"] >= 0.75 and held["recall"] >= 0.6, held
    path = model.save(str(tmp_path / "classifier.safetensors"), {"source": "test"})
    again = rc.RewardClassifier.load(path)
    frames = {k: v[:20] for k, v in sim_frames.frames.items()}
    assert np.allclose(again.probability(frames), model.probability(frames), atol=1e-6)
    assert again.info["source"] == "test" and again.cameras == ("front", "wrist")
    # the training features travel with the file (float16): what a veto retrains on
    x, y, w = again.training_set
    assert x.shape == model.training_set[0].shape and np.allclose(x.numpy(), model.training_set[0].numpy(),
                                                                 rtol=1e-3, atol=1e-2)
    assert y.tolist() == model.training_set[1].tolist() and float(w.min()) == 1.0
    one = again.probability({k: v[0] for k, v in frames.items()})
    assert one.shape == (1,) and 0.0 <= one[0] <= 1.0
    with pytest.raises(ValueError, match="no frame of camera"):
        again.probability({"front": frames["front"]})


@pytest.fixture(scope="module")
def trained_so101(sim_frames):
    return rc.train(sim_frames, held_out=0.25, seed=0, encoder="so101")


def test_vetoes_teach_it_its_false_successes_and_it_keeps_the_true_ones(sim_frames, trained_so101):
    """Its false successes on held-out episodes get vetoed: afterwards it calls them failures,
    and it still finds the held-out successes. On the so101 encoder: on the default backbone the
    held-out recall after these vetoes came out 0.55 to 0.59 (issue 23 is open on it)."""
    import copy

    model = copy.deepcopy(trained_so101[0])
    _, held = rc.split_episodes(sim_frames, 0.25, seed=0)
    p, features = model.judge(held.frames)
    threshold = 0.5
    failures = np.flatnonzero(~held.labels)
    surest = failures[np.argsort(-p[failures])[:5]]
    surest = surest[p[surest] >= threshold]
    assert len(surest) >= 1, "no false success on the held-out episodes: nothing to veto"
    learner = rc.VetoLearner(model, frames_per_veto=1)
    before = model.training_set[0].shape[0]
    for stamp, index in enumerate(surest):
        learner.remember(float(stamp), features[index])
        done = learner.veto(float(stamp), threshold)
        # (a veto can teach it the next one already: only the first is sure to be above)
        assert done["added"] == 1 and (stamp > 0 or done["p_before"] >= threshold)
    after, _ = model.judge(held.frames)
    assert np.all(after[surest] < threshold), (p[surest], after[surest])
    n = len(surest)
    assert learner.vetoes == n and model.training_set[0].shape[0] == before + n
    assert float(model.training_set[2][-n:].min()) == learner.weight and model.info["hard_negatives"] == n
    kept = rc.scores(after, held.labels, threshold)
    assert kept["recall"] >= 0.6, kept
    assert learner.veto(-1.0)["added"] == 0  # nothing remembered that early: nothing learnt


def test_a_veto_is_kept_before_its_counts_announce_it(trained, tmp_path):
    """The node announces learnt vetoes through the counts: the file must be on disk (whole)
    by then, and a veto whose file could not be written is not counted."""
    import copy

    model = copy.deepcopy(trained[0])
    learner = rc.VetoLearner(model, frames_per_veto=1)
    learner.remember(1.0, model.training_set[0][0])
    path = str(tmp_path / "vetoed.safetensors")
    seen = []

    def persist(m):
        seen.append((learner.vetoes, learner.hard_negatives))
        m.save(path)

    assert learner.veto(1.0, persist=persist)["added"] == 1
    assert seen == [(0, 0)] and (learner.vetoes, learner.hard_negatives) == (1, 1)
    assert rc.RewardClassifier.load(path).info["vetoes"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["vetoed.safetensors"]  # no partial file left

    def broken(m):
        raise OSError("disk full")

    with pytest.raises(OSError):
        learner.veto(1.0, persist=broken)
    assert (learner.vetoes, learner.hard_negatives) == (1, 1)


def test_vetoes_need_the_training_features():
    with pytest.raises(ValueError, match="no training features"):
        rc.VetoLearner(rc.from_policy_encoders(("front", "wrist")))


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
    writer.add_topic(topics.REWARD_VETO, "hilserl_ros/msg/RewardVeto")
    t_ns = 1
    second = 1_000_000_000
    # episode 3: the classifier's success, which the operator vetoes 2 s later
    for episode, final_reward in ((1, 1.0), (2, -0.3), (3, 1.0)):
        for step in range(4):
            last = step == 3
            msg = Transition(actor_id="actor", seq=t_ns, episode=episode, step=step, terminated=last,
                             reward=final_reward if last else 0.0, images=images())
            if last:
                msg.next_images = images()
            t_ns += second // 10
            writer.write(topics.TRANSITIONS, t_ns, serialize_message(msg))
    writer.write(topics.REWARD_VETO, t_ns + 2 * second, serialize_message(RewardVeto(episode=3, probability=0.9)))
    writer.close()
    data = rc.collect_bags([str(tmp_path / "demos")])
    assert len(data) == 15 and data.labels.tolist() == [False] * 4 + [True] + [False] * 10
    assert len(np.unique(data.episodes)) == 3 and data.vetoed_episodes == 1
    # the guard leaves out the frames just before a success, and only there
    guarded = rc.collect_bags([str(tmp_path / "demos")], guard_steps=2)
    assert len(guarded) == 13 and guarded.labels.tolist() == [False] * 2 + [True] + [False] * 10
    # a veto long after the success is about something else
    late = rc.collect_bags([str(tmp_path / "demos")], veto_window=1.0)
    assert late.vetoed_episodes == 0 and late.labels.sum() == 2
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
    assert 0.0 < info["classifier_p"] < 1.0 and env.false_successes == 1 and "veto" not in info
    never = rc.ClassifierReward(make_env("pick_cube", seed=0, operator=False, observation="pixels"), model,
                                threshold=1.01)
    never.reset(seed=0)
    limit = never.unwrapped.config.max_episode_steps
    for step in range(1, limit + 1):
        _, reward, terminated, truncated, _ = never.step(np.zeros(4, np.float32))
        assert reward == 0.0 and not terminated and truncated == (step == limit)


def test_the_scripted_operator_vetoes_the_classifiers_false_success_and_it_learns(trained):
    import copy

    from hilserl_ros.sim.env import make_env

    model = copy.deepcopy(trained[0])
    lines = []
    env = rc.ClassifierReward(make_env("pick_cube", seed=0, operator=False, observation="pixels"), model,
                              threshold=1e-6, vetoes=rc.VetoLearner(model), log=lines.append)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
    # the cube is on the table: the simulator sees no success, the operator vetoes, a hard negative
    assert reward == 1.0 and terminated and not info["success"]
    assert info["veto"]["added"] == 1 and env.stats()["vetoes"] == 1 and env.stats()["veto_steps"] == [1]
    assert "operator veto" in lines[0] and info["veto"]["p_after"] < info["veto"]["p_before"]
    # an operator who notices none of them (veto_share 0): the false success stands, nothing learnt
    blind = rc.ClassifierReward(make_env("pick_cube", seed=0, operator=False, observation="pixels"), model,
                                threshold=1e-6, vetoes=rc.VetoLearner(model), veto_share=0.0)
    blind.reset(seed=0)
    _, reward, _, _, info = blind.step(np.zeros(4, np.float32))
    assert reward == 1.0 and "veto" not in info and blind.stats()["vetoes"] == 0 and blind.false_successes == 1


def test_the_timeline_counts_false_successes_and_vetoes_per_window():
    from hilserl_ros.sim.train_env import EpisodeRecord, classifier_timeline

    # 10-step episodes every 30 s for 6.5 min; the classifier pays every other one, and one in
    # four of those (episode 8) the simulator did not see
    records = [EpisodeRecord(i + 1, 10 * (i + 1), 10, 1.0 if i % 2 else 0.0, i % 2 == 1 and i % 8 != 7, 0,
                             30.0 * i + 29.0, 0.1) for i in range(13)]
    windows = classifier_timeline(records, veto_steps=[40, 80, 125, 165], minutes=3.0, budget=6.0)
    # the episode that ends past the budget (6.5 min) counts in the last window
    assert [w["episodes"] for w in windows] == [6, 7] and [w["env_steps"] for w in windows] == [[0, 60], [60, 130]]
    assert [w["classifier_successes"] for w in windows] == [3, 3]
    assert windows[0]["false_share"] == 0.0 and windows[1]["false_share"] == pytest.approx(1 / 3)
    assert [w["vetoes"] for w in windows] == [1, 2]  # 165 is past the last episode's end
    assert [w["policy_success"] for w in windows] == [pytest.approx(3 / 6), pytest.approx(2 / 7)]


# --------------------------------------------------------------------------- the policy's backbone
def test_the_descriptor_keeps_coarse_layout_in_five_values_per_channel():
    import torch

    maps = torch.zeros(2, 80, 8, 8)
    maps[0, 3, :4, :4] = 1.0  # a feature in the top-left quadrant only
    maps[1, 3, 6, 6] = 8.0  # ... and one small bright spot at the bottom right
    d = rc.map_descriptor(maps)
    assert d.shape == (2, 80 * rc.DESCRIPTOR_PER_CHANNEL)
    quadrants, peak = d[:, :320].view(2, 80, 2, 2), d[:, 320:]
    assert quadrants[0, 3].tolist() == [[1.0, 0.0], [0.0, 0.0]] and quadrants[1, 3].tolist() == [[0.0, 0.0], [0.0, 0.5]]
    assert peak[0, 3] == 1.0 and peak[1, 3] == 8.0
    others = [i for i in range(400) if i not in (12, 13, 14, 15, 323)]  # all but channel 3's five values
    assert float(d[:, others].abs().max()) == 0


@pytest.fixture(scope="module")
def few_frames(sim_frames):
    return sim_frames.subset(sim_frames.episodes < 4)  # ~150 frame sets: a few seconds through the backbone


def test_a_backbone_classifier_file_holds_the_head_and_its_features_not_the_backbone(few_frames, tmp_path):
    import json

    from safetensors import safe_open

    from hilserl_ros.learning.config import DEFAULT_ENCODER

    assert few_frames.labels.any() and not few_frames.labels.all()
    model, _ = rc.train(few_frames, held_out=0.0, epochs=20)  # the default encoder: the policy's backbone
    assert model.backbone == DEFAULT_ENCODER and len(model.encoders) == 0
    per_camera = rc.shared_backbone(DEFAULT_ENCODER, 128).channels * rc.DESCRIPTOR_PER_CHANNEL  # C * 5
    assert model.head[0].in_features == 2 * per_camera  # e.g. stage4: 80 channels, stage7: 320
    assert model.training_set[0].shape == (len(few_frames), 2 * per_camera)
    path = model.save(str(tmp_path / "backbone.safetensors"))
    with safe_open(path, "pt") as fh:
        names = set(fh.keys())
        meta = json.loads(fh.metadata()["hilserl_reward_classifier"])
    assert names == {"head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias", "head.3.weight", "head.3.bias",
                     "training.features", "training.labels", "training.weights"}
    assert meta["backbone"] == DEFAULT_ENCODER and meta["latent_dim"] == per_camera
    again = rc.RewardClassifier.load(path)
    assert again.backbone == DEFAULT_ENCODER and "backbone" not in again.info
    assert np.array_equal(again.probability(few_frames.frames), model.probability(few_frames.frames))
    # the float16 copy of the training features is close enough to retrain on
    assert np.allclose(again.training_set[0].numpy(), model.training_set[0].numpy(), rtol=1e-3, atol=1e-2)
    learner = rc.VetoLearner(again, frames_per_veto=1)
    learner.remember(0.0, again.training_set[0][0])
    assert learner.veto(0.0)["added"] == 1


def test_a_file_of_the_so101_encoders_still_carries_them(few_frames, tmp_path):
    model, _ = rc.train(few_frames, held_out=0.0, epochs=5, encoder="so101")
    assert model.backbone == "" and set(model.encoders) == {"front", "wrist"} and model.head[0].in_features == 512
    again = rc.RewardClassifier.load(model.save(str(tmp_path / "so101.safetensors")))
    assert again.backbone == "" and "encoders.front.spatial" in again.state_dict()
    frames = {k: v[:8] for k, v in few_frames.frames.items()}
    assert np.array_equal(again.probability(frames), model.probability(frames))


def test_the_head_starts_the_same_whether_or_not_the_backbone_was_built_already(monkeypatch):
    import torch

    from hilserl_ros.learning import networks

    torch.manual_seed(0)
    built = rc.from_backbone(("front", "wrist"))
    monkeypatch.setattr(networks, "_BACKBONES", {})  # as in a fresh process
    torch.manual_seed(0)
    fresh = rc.from_backbone(("front", "wrist"))
    assert all(torch.equal(a, b) for a, b in zip(built.head.state_dict().values(), fresh.head.state_dict().values()))


def test_an_encoder_the_classifier_cannot_use_is_refused_with_the_reason(few_frames, capsys, tmp_path):
    import json

    import safetensors.torch
    import torch

    for encoder, reason in (("scratch", "no encoder for the reward classifier"), ("efficientnet-lite0:stage9",
                            "cut 'stage9' is not one of"), ("vgg16", "unknown backbone 'vgg16'"),
                            ("resnet10:/nowhere/model.safetensors", "no such file")):
        assert reason in rc.classifier_encoder_error(encoder)
        with pytest.raises(ValueError, match="encoder .*" + reason.split("'")[0]):
            rc.train(few_frames, held_out=0.0, epochs=1, encoder=encoder)
        with pytest.raises(SystemExit):
            rc.main(["--sim-episodes", "1", "--encoder", encoder])
        assert reason in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a backbone"):
        rc.from_backbone(("front",), "so101")
    # a file naming a backbone this machine cannot build is refused, not half loaded
    path = str(tmp_path / "elsewhere.safetensors")
    meta = {"cameras": ["front"], "image_size": 128, "latent_dim": 2560, "hidden": 128,
            "backbone": "resnet10:/nowhere/model.safetensors"}
    safetensors.torch.save_file({"head.0.weight": torch.zeros(128, 2560)}, path,
                                metadata={"hilserl_reward_classifier": json.dumps(meta)})
    with pytest.raises(ValueError, match="cannot be built here: resnet10 weights"):
        rc.RewardClassifier.load(path)
