"""The report command (hilserl_ros.report) on real inputs: rosbag2 MCAP bags written with
rosbags from rclpy-serialized messages, and run directories in the format train.py writes
(written by train.py's own functions, so the two cannot drift apart). No ROS nodes."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from hilserl_ros import report
from hilserl_ros.msg import EpisodeStats, LearnerStats
from hilserl_ros.recording.types import shared_types

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_EPISODES = 30
N_STATS = 10
STEPS = 8  # per episode


# Known series. Values are exact in float32 so what comes back can be compared with ==.
def episode_msg(i: int, actor: str = "actor_0") -> EpisodeStats:
    success = i >= 20 or i % 2 == 0
    helped = 4 if i < 10 else (2 if i < 25 else 0)  # intervention steps of STEPS
    return EpisodeStats(actor_id=actor, episode=i + 1, steps=STEPS, total_steps=STEPS * (i + 1),
                        reward=0.5 * i, success=success, intervention_steps=helped,
                        intervention_rate=helped / STEPS, end_reason="success" if success else "timeout")


def stats_msg(i: int) -> LearnerStats:
    return LearnerStats(update_step=100 * (i + 1), alpha=0.5 ** i, entropy=-1.0 - 0.25 * i,
                        target_entropy=-2.0, alpha_collapse=i in (6, 7), critic_loss=1.0 / (i + 1),
                        action_abs_mean=0.5)


# Over the last 20 episodes (i = 10..29): successes are 10, 12, 14, 16, 18 and 20..29 -> 15/20;
# with no intervention only 25..29 -> 5/20; intervention rate 15 x 0.25 + 5 x 0 over 20.
WINDOW = 20
EXPECTED_SUCCESS = 15 / 20
EXPECTED_AUTONOMOUS = 5 / 20
EXPECTED_INTERVENTION = 15 * 0.25 / 20


def write_bag(path: Path, episodes: list[int], stats: list[int], extra_topic: bool = False) -> None:
    """Episode i arrives at (i + 1) s, LearnerStats i at (3 i + 1.5) s (bag receive time)."""
    types = shared_types()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        messages = []
        if episodes:
            conn = writer.add_connection(report.EPISODE_TOPIC, types.ensure(report.EPISODE_TYPE),
                                         typestore=types.typestore)
            messages += [(int((i + 1) * 1e9), conn, serialize_message(episode_msg(i))) for i in episodes]
        if stats:
            conn = writer.add_connection(report.LEARNER_TOPIC, types.ensure(report.LEARNER_TYPE),
                                         typestore=types.typestore)
            messages += [(int((3 * i + 1.5) * 1e9), conn, serialize_message(stats_msg(i))) for i in stats]
        if extra_topic:
            conn = writer.add_connection("/other", types.ensure("std_msgs/msg/String"), typestore=types.typestore)
            messages.append((1, conn, bytes(types.serialize(types.typestore.types["std_msgs/msg/String"](data="x"),
                                                            "std_msgs/msg/String"))))
        for stamp, conn, raw in sorted(messages, key=lambda m: m[0]):
            writer.write(conn, stamp, raw)


def assert_png(path: Path, width: int, height: int) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.shape == (height, width, 4)
    # something was drawn: not a blank canvas
    assert float(image[..., :3].min()) < 0.5


def check_episodes(ep: dict) -> None:
    assert len(ep["reward"]) == N_EPISODES
    np.testing.assert_array_equal(ep["episode"], np.arange(1, N_EPISODES + 1))
    np.testing.assert_array_equal(ep["env_steps"], STEPS * np.arange(1, N_EPISODES + 1))
    np.testing.assert_allclose(ep["reward"], 0.5 * np.arange(N_EPISODES))
    success_rate = report.rolling_mean(ep["success"], WINDOW)
    assert success_rate[-1] == pytest.approx(EXPECTED_SUCCESS)
    assert report.rolling_mean(ep["autonomous"], WINDOW)[-1] == pytest.approx(EXPECTED_AUTONOMOUS)
    assert report.rolling_mean(ep["intervention_rate"], WINDOW)[-1] == pytest.approx(EXPECTED_INTERVENTION)
    # the start of the curve is over the episodes so far: 1 of 1, 1 of 2, 2 of 3
    np.testing.assert_allclose(success_rate[:3], [1.0, 0.5, 2 / 3])


def check_learner(ls: dict, with_collapse: bool) -> None:
    np.testing.assert_array_equal(ls["update_step"], 100 * np.arange(1, N_STATS + 1))
    np.testing.assert_array_equal(ls["alpha"], 0.5 ** np.arange(N_STATS))
    np.testing.assert_allclose(ls["entropy"], -1.0 - 0.25 * np.arange(N_STATS))
    np.testing.assert_array_equal(ls["target_entropy"], np.full(N_STATS, -2.0))
    if with_collapse:
        np.testing.assert_array_equal(np.flatnonzero(ls["alpha_collapse"]), [6, 7])


def test_bags_in_several_directories(tmp_path, capsys):
    """A recording split over two bag directories: merged in time order, all six plots."""
    rec = tmp_path / "recording"
    rec.mkdir()
    write_bag(rec / "part_1", episodes=list(range(15)), stats=list(range(N_STATS)), extra_topic=True)
    write_bag(rec / "part_2", episodes=list(range(15, N_EPISODES)), stats=[])

    data = report.load_run([rec])
    assert data.notes == []
    check_episodes(data.episodes)
    check_learner(data.learner, with_collapse=True)
    # LearnerStats 0 (1.5 s) arrived between episode 1 (1 s, 8 steps) and 2 (2 s, 16 steps)
    assert data.learner["env_steps"][0] == pytest.approx(12.0)
    assert report.summarize(data, WINDOW)["alpha_collapse_messages"] == 2
    # the watchdog period runs from its first flagged message to the next unflagged one
    assert report._collapse_spans(data.learner["update_step"], data.learner["alpha_collapse"]) == [(700.0, 900.0)]

    assert report.main([str(rec), "--window", str(WINDOW)]) == 0
    out = rec / "report"
    for name in ("alpha.png", "entropy.png", "reward.png", "success_rate.png", "intervention_rate.png"):
        assert_png(out / name, 700, 450)
    assert_png(out / "summary.png", 1650, 800)
    printed = capsys.readouterr().out
    assert "episodes           30" in printed
    assert f"environment steps  {STEPS * N_EPISODES}" in printed
    assert "success rate       75%" in printed and "policy alone, no intervention: 25%" in printed
    assert "intervention rate  19%" in printed
    assert f"last alpha         {0.5 ** 9:.4g}" in printed
    assert "last target entropy -2.000" in printed
    assert str(out / "summary.png") in printed


def test_bag_without_learner_stats_skips_those_plots(tmp_path, capsys):
    bag = tmp_path / "episodes_only"
    write_bag(bag, episodes=list(range(N_EPISODES)), stats=[])
    out = tmp_path / "elsewhere"
    assert report.main([str(bag), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no learner statistics" in printed and "skipping alpha.png, entropy.png" in printed
    assert not (out / "alpha.png").exists() and not (out / "entropy.png").exists()
    assert_png(out / "success_rate.png", 700, 450)
    assert_png(out / "summary.png", 1650, 400)  # one row of three panels
    assert "last alpha" not in printed


def test_learner_x_env_steps(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag, episodes=list(range(N_EPISODES)), stats=list(range(N_STATS)))
    data = report.load_run([bag / "bag.mcap"])  # a bare .mcap file reads too
    x, label = report._learner_x(data, "env")
    assert label == "environment steps"
    # LearnerStats i at 3 i + 1.5 s lies halfway between episodes 3 i + 1 and 3 i + 2
    np.testing.assert_allclose(x, STEPS * (3 * np.arange(N_STATS) + 1.5))
    assert report.main([str(bag), "--learner-x", "env"]) == 0
    assert_png(bag / "report" / "alpha.png", 700, 450)


def write_train_run(run_dir: Path) -> None:
    """history.csv and learner_stats.csv through train.py's own writers and its Monitor's row format."""
    from hilserl_ros import train

    monitor = SimpleNamespace(episodes=[], stat_rows=[], stats=None, lock=threading.Lock(), started=time.monotonic(),
                              collapse_flagged=None)
    stats_at = {3 * i + 1: i for i in range(N_STATS)}  # after episode 3 i + 1 finished
    for i in range(N_EPISODES):
        train.Monitor._on_episode(monitor, episode_msg(i))
        if i + 1 in stats_at:
            train.Monitor._on_stats(monitor, stats_msg(stats_at[i + 1]))
    run_dir.mkdir()
    train.write_history(str(run_dir), monitor)
    train.write_learner_stats(str(run_dir), monitor)


def test_train_run_directory(tmp_path, capsys):
    run = tmp_path / "train-run"
    write_train_run(run)
    data = report.load_run([run])
    check_episodes(data.episodes)
    check_learner(data.learner, with_collapse=False)  # train.py's csv has no alpha_collapse column
    # the csv's 'episodes' column places each message: after episode 3 i + 1
    np.testing.assert_array_equal(data.learner["env_steps"], STEPS * (3 * np.arange(N_STATS) + 1))

    assert report.main([str(run)]) == 0
    for name in ("alpha.png", "entropy.png", "reward.png", "success_rate.png", "intervention_rate.png",
                 "summary.png"):
        assert (run / "report" / name).read_bytes()[:8] == PNG_MAGIC
    printed = capsys.readouterr().out
    assert "success rate       75%" in printed and "episodes           30" in printed


def test_csv_files_directly(tmp_path):
    run = tmp_path / "run"
    write_train_run(run)
    # the learner csv alone: episode plots skipped, learner ones written beside it
    data = report.load_run([run / "learner_stats.csv"])
    assert data.episodes is None and any("skipping reward.png" in n for n in data.notes)
    check_learner(data.learner, with_collapse=False)
    # both files, in either order (told apart by their columns)
    data = report.load_run([run / "learner_stats.csv", run / "history.csv"])
    check_episodes(data.episodes)
    out = tmp_path / "out"
    assert report.main([str(run / "history.csv"), str(run / "learner_stats.csv"), "--out", str(out)]) == 0
    assert_png(out / "entropy.png", 700, 450)


def test_empty_learner_csv_is_skipped(tmp_path, capsys):
    """train.py leaves learner_stats.csv empty when no statistics arrived."""
    run = tmp_path / "run"
    write_train_run(run)
    (run / "learner_stats.csv").write_text("")
    assert report.main([str(run)]) == 0
    assert "no learner statistics" in capsys.readouterr().out
    assert not (run / "report" / "alpha.png").exists()
    assert (run / "report" / "reward.png").is_file()


@pytest.mark.parametrize("case", ["missing", "empty_dir", "no_topics", "unknown_csv", "empty_history"])
def test_bad_input_is_a_clear_error(tmp_path, capsys, case):
    if case == "missing":
        target, expected = tmp_path / "nope", "no such file or directory"
    elif case == "empty_dir":
        target, expected = tmp_path / "empty", "no rosbag2 bag"
        target.mkdir()
    elif case == "no_topics":
        target, expected = tmp_path / "bag", "no episodes (/episode_stats) and no learner statistics"
        write_bag(target, episodes=[], stats=[], extra_topic=True)
    elif case == "unknown_csv":
        target, expected = tmp_path / "x.csv", "unknown columns"
        target.write_text("a,b\n1,2\n")
    else:
        target, expected = tmp_path / "history.csv", "no episodes"
        target.write_text("episode,total_steps,steps,reward,success,intervention_rate,end_reason,policy_version\n")
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(target)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "usage:" in err
    assert not (tmp_path / "report").exists()


def test_combined_env_steps_over_actors_and_restarts():
    actors = ["a", "b", "a", "b", "a"]
    total = [10, 5, 20, 15, 4]  # actor a restarted before its third episode
    np.testing.assert_array_equal(report.combined_env_steps(actors, total), [10, 15, 25, 35, 39])
