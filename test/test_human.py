"""The scripted operator intervenes when the policy stalls or drifts, steers to the goal, and
leaves a policy that makes progress alone."""
import numpy as np
import pytest

from hilserl_ros.human import HumanConfig, ScriptedHuman


def run(policy, steps=60, seed=0):
    human = ScriptedHuman(HumanConfig(jitter=0.0, seed=seed))
    goal, ee = np.array([0.25, 0.05, 0.10]), np.array([0.20, -0.05, 0.15])
    active = 0
    for _ in range(steps):
        action = human.step(ee, goal)
        if action is None:
            action = policy(ee, goal)
        else:
            active += 1
        ee = ee + 0.02 * np.clip(action[:3], -1, 1)  # action_scale 2 cm
    return active / steps, float(np.linalg.norm(goal - ee))


def test_a_stalled_policy_gets_taken_over_and_steered_to_the_goal():
    rate, final = run(lambda ee, goal: np.zeros(4))
    assert 0.1 < rate < 0.5  # one takeover brings it home, then it stays there
    assert final < 0.02


def test_a_drifting_policy_gets_taken_over():
    rate, _ = run(lambda ee, goal: np.array([-1.0, 0.0, 0.0, 0.0]))
    assert rate > 0.3


def test_a_good_policy_is_left_alone():
    good = lambda ee, goal: np.concatenate([np.clip((goal - ee) / 0.02, -1, 1), [0.0]])  # noqa: E731
    rate, final = run(good)
    assert rate == 0.0 and final < 0.02


def test_the_operator_lets_go_after_takeover_steps():
    human = ScriptedHuman(HumanConfig(patience=2, takeover_steps=3, jitter=0.0))
    ee, goal = np.zeros(3), np.array([0.1, 0, 0])
    flags = [human.step(ee, goal) is not None for _ in range(8)]  # the arm never moves: stalled
    assert flags[:2] == [False, False] and flags[2:5] == [True, True, True] and flags[5] is False


def test_the_operator_hands_back_once_close_and_helps_home_a_policy_stuck_there():
    human = ScriptedHuman(HumanConfig(patience=2, takeover_steps=20, release_distance=0.03, jitter=0.0))
    ee, goal = np.zeros(3), np.array([0.1, 0.0, 0.0])
    trace = []
    for _ in range(16):  # the policy never moves the arm: only the operator does
        action = human.step(ee, goal)
        trace.append((float(np.linalg.norm(goal - ee)), action is not None))
        if action is not None:
            ee = ee + 0.02 * action[:3]
    first_release = next(i for i, (_, active) in enumerate(trace) if i > 2 and not active)
    assert 0.02 < trace[first_release][0] <= 0.03  # let go at 3 cm: the last stretch is the policy's
    assert any(active for _, active in trace[first_release:])  # stuck there: taken over again
    assert np.linalg.norm(goal - ee) < 0.01  # ... and brought home this time


def test_observation_scales_the_reach_offset_to_order_one():
    from hilserl_ros.observation import OBS_DIM, build_observation

    obs = build_observation(np.zeros(6), [0.2, 0.0, 0.1], [0.25, 0.0, 0.1])
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32
    assert obs[12] == pytest.approx(1.0)  # 5 cm ahead in x reads 1.0
    assert obs[6] == pytest.approx(1.0)  # 20 cm reads 1.0
    with pytest.raises(ValueError, match="6 joints"):
        build_observation(np.zeros(5), [0, 0, 0], [0, 0, 0])


def test_demonstration_mode_drives_every_step_even_while_progressing():
    human = ScriptedHuman(HumanConfig(jitter=0.0, demonstrate=True))
    goal, ee = np.array([0.25, 0.05, 0.10]), np.array([0.20, -0.05, 0.15])
    for _ in range(30):
        action = human.step(ee, goal)
        assert action is not None  # the corrective mode would wait `patience` steps first
        ee = ee + 0.02 * action[:3]
    assert np.linalg.norm(goal - ee) < 0.02
