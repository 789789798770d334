"""The real arm's episodes without a simulator (hilserl_ros.task_judge): the way home is slow
and smooth, episodes start on START or a timer, success and failure come from the buttons and
the classifier as configured, and a silent classifier stops the episode with the reason."""
import numpy as np
import pytest

from hilserl_ros.task_judge import RESETTING, RUNNING, STOPPED, WAITING, EpisodeJudge, HomeMove, JudgeConfig

HOME = np.array([0.0, -1.2, 1.2, 0.75, 0.0, 0.0])
START = np.array([0.6, -0.2, 0.3, 1.4, -0.5, 1.0])
RATE = 10.0


def run_home(judge: EpisodeJudge, t: float = 0.0):
    """Drive the judge's reset against an arm that follows each target exactly."""
    q = START.copy()
    judge.reset(q, t)
    targets = []
    while judge.state == RESETTING:
        target = judge.reset_target(q, t)
        if target is not None:
            targets.append(target)
            q = target
        t += 1.0 / RATE
    return np.array(targets), t


@pytest.mark.parametrize("speed,accel", [(0.5, 1.0), (1.0, 0.5), (0.2, 3.0)])
def test_the_way_home_keeps_to_the_speed_and_acceleration_limits_and_arrives(speed, accel):
    move = HomeMove(START, HOME, speed, accel, RATE)
    points = [START]
    for _ in range(10000):
        if move.done:
            break
        points.append(move.next())
    points = np.array(points)
    assert np.allclose(points[-1], HOME)
    steps = np.abs(np.diff(points, axis=0)).max(axis=1)  # per period, the farthest-moving joint
    assert steps.max() <= speed / RATE + 1e-9
    speeds = steps * RATE
    # speed changes by at most accel per period (allowing the last, short step)
    assert np.all(np.abs(np.diff(speeds[:-1])) <= accel / RATE + 1e-9)
    assert speeds[0] <= accel / RATE + 1e-9  # it starts gently
    # a straight line: every joint's progress is the same fraction
    fraction = (points - START) / (HOME - START)
    moving = np.abs(HOME - START) > 1e-9
    assert np.allclose(fraction[:, moving], fraction[:, moving][:, :1], atol=1e-9)


def test_the_home_move_refuses_bad_input():
    with pytest.raises(ValueError):
        HomeMove(START, HOME, 0.0, 1.0, RATE)
    with pytest.raises(ValueError):
        HomeMove([np.nan] * 6, HOME, 0.5, 1.0, RATE)


def test_an_episode_starts_only_once_home_and_on_start_and_ends_on_the_success_button():
    judge = EpisodeJudge(JudgeConfig(reward_source="buttons", start_on="button"), HOME, 0.5, 1.0, RATE)
    assert not judge.start(0.0)  # nothing to start before a reset
    judge.reset(START, 0.0)
    assert not judge.start(0.1) and judge.state == RESETTING  # the arm is not home yet
    targets, t = run_home(judge)
    assert judge.state == WAITING and judge.tick(t) is None  # no task state while waiting
    assert judge.start(t) and judge.state == RUNNING and judge.episode == 1
    verdict = judge.tick(t + 0.1)
    assert (verdict.reward, verdict.success, verdict.failure) == (0.0, False, False)
    judge.button(True)
    verdict = judge.tick(t + 0.2)
    assert verdict.success and not verdict.failure and verdict.reward == 1.0 and "button" in verdict.reason
    assert judge.state == STOPPED and judge.tick(t + 0.3) is None


def test_the_timer_starts_episodes_and_the_failure_button_ends_them_with_the_penalty():
    config = JudgeConfig(reward_source="buttons", start_on="timer", start_delay=1.0, step_penalty=0.05)
    judge = EpisodeJudge(config, HOME, 0.5, 1.0, RATE)
    _, t = run_home(judge)
    assert judge.tick(t + 0.5) is None and judge.state == WAITING
    verdict = judge.tick(t + 1.0)
    assert judge.state == RUNNING and verdict.reward == pytest.approx(-0.05)
    judge.button(False)
    verdict = judge.tick(t + 1.1)
    assert verdict.failure and not verdict.success and verdict.reward == pytest.approx(-0.05)


def test_the_classifier_judges_success_and_its_silence_stops_the_episode_with_the_reason():
    config = JudgeConfig(reward_source="classifier", start_on="button", classifier_timeout=0.5)
    judge = EpisodeJudge(config, HOME, 0.5, 1.0, RATE)
    _, t = run_home(judge)
    assert not judge.start(t) and "no prediction" in judge.why_not_started  # never starts blind
    judge.classifier(t, False, 0.1)
    assert judge.start(t)
    judge.button(True)  # classifier only: the success button is not a judge
    judge.classifier(t + 0.1, False, 0.2)
    assert not judge.tick(t + 0.1).success
    judge.classifier(t + 0.2, True, 0.93)
    verdict = judge.tick(t + 0.2)
    assert verdict.success and verdict.reward == 1.0 and verdict.reason == "classifier p=0.93"
    # next episode: the classifier (or its camera) goes quiet
    _, t = run_home(judge, t + 1.0)
    judge.classifier(t, False, 0.1)
    assert judge.start(t)
    verdict = judge.tick(t + 0.6)
    assert verdict.failure and not verdict.success and "silent" in verdict.reason and "camera" in verdict.reason


def test_a_success_seen_before_the_episode_began_does_not_end_it():
    """The last prediction before START judged frames of the previous episode (or of the way
    home, under the old threshold): the new episode runs on until a frame of its own says so."""
    config = JudgeConfig(reward_source="classifier", classifier_timeout=1.0)
    judge = EpisodeJudge(config, HOME, 0.5, 1.0, RATE)
    _, t = run_home(judge)
    judge.classifier(t - 0.1, True, 0.0)  # fresh enough to start on, but older than the episode
    assert judge.start(t)
    verdict = judge.tick(t + 0.05)
    assert not verdict.success and not verdict.failure  # the classifier is there, its verdict is not this episode's
    judge.classifier(t + 0.1, False, 0.3)
    assert not judge.tick(t + 0.15).success
    judge.classifier(t + 0.2, True, 0.8)
    assert judge.tick(t + 0.25).success


def test_both_takes_the_first_of_button_and_classifier():
    judge = EpisodeJudge(JudgeConfig(reward_source="both"), HOME, 0.5, 1.0, RATE)
    _, t = run_home(judge)
    judge.classifier(t, False, 0.1)
    judge.start(t)
    judge.button(True)
    assert "button" in judge.tick(t + 0.1).reason


def test_failure_right_after_the_classifiers_success_vetoes_it_once():
    judge = EpisodeJudge(JudgeConfig(reward_source="both", veto_window=3.0), HOME, 0.5, 1.0, RATE)
    _, t = run_home(judge)
    judge.classifier(t, False, 0.1)
    judge.start(t)
    judge.classifier(t + 0.1, True, 0.87)
    assert judge.tick(t + 0.15).success
    # the operator disagrees 2 s later: a veto of that prediction, and only one
    veto = judge.button(False, t + 2.15)
    assert veto is not None and (veto.episode, veto.stamp, veto.probability) == (1, t + 0.1, pytest.approx(0.87))
    assert judge.button(False, t + 2.2) is None
    # too late: 3.5 s after the claimed success
    _, t = run_home(judge, t + 3.0)
    judge.classifier(t, False, 0.1)
    judge.start(t)
    judge.classifier(t + 0.1, True, 0.9)
    judge.tick(t + 0.1)
    assert judge.button(False, t + 3.6) is None
    # a success the operator gave (the button) is not the classifier's to veto
    _, t = run_home(judge, t + 4.0)
    judge.classifier(t, False, 0.1)
    judge.start(t)
    judge.button(True, t + 0.1)
    assert judge.tick(t + 0.1).success and judge.button(False, t + 0.5) is None
    # FAILURE while running ends the episode as before, no veto
    _, t = run_home(judge, t + 1.0)
    judge.classifier(t, False, 0.1)
    judge.start(t)
    assert judge.button(False, t + 0.1) is None and judge.tick(t + 0.1).failure


def test_a_reset_that_never_arrives_stops_with_the_reason():
    judge = EpisodeJudge(JudgeConfig(reset_timeout=2.0), HOME, 0.5, 1.0, RATE)
    judge.reset(START, 0.0)
    t = 0.0
    while judge.state == RESETTING:
        judge.reset_target(START, t)  # the arm does not follow (torque off, blocked)
        t += 0.1
    assert judge.state == STOPPED and "did not reach home" in judge.why_not_started and t == pytest.approx(2.1)
    assert judge.reset_failed and not judge.start(t)  # START does not begin an episode from there ...
    judge.reset(HOME, t)  # ... the task node answers it with another way home (task_node._on_event)
    assert judge.state == RESETTING and not judge.reset_failed
    judge.reset_target(HOME, t)
    while judge.state == RESETTING:
        t += 0.1
        judge.reset_target(HOME, t)
    assert judge.state == WAITING  # home: the next START begins the episode


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="reward_source"):
        EpisodeJudge(JudgeConfig(reward_source="sim"), HOME, 0.5, 1.0, RATE)
    with pytest.raises(ValueError, match="start_on"):
        EpisodeJudge(JudgeConfig(start_on="now"), HOME, 0.5, 1.0, RATE)
