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


# ----------------------------------------------------------------------------- pick_cube
def test_the_pick_operator_alone_picks_the_cube_in_most_episodes():
    """The teacher of pick_cube: its own success rate bounds what demonstrations and
    interventions can show the policy (reported, and held to at least 70%)."""
    from hilserl_ros.sim.env import make_env

    env = make_env("pick_cube", seed=0, demonstrate=True)
    successes, steps = 0, []
    for episode in range(20):
        env.reset(seed=0 if episode == 0 else None)
        for step in range(1, 101):
            _, _, terminated, truncated, info = env.step(np.zeros(4))
            assert info["intervention"]  # demonstrate: it drives every step
            if terminated or truncated:
                break
        successes += bool(info["success"])
        steps.append(step)
    print(f"scripted pick operator: {successes}/20 picked, {np.mean(steps):.0f} steps per episode")
    assert successes >= 14


def test_the_pick_operator_opens_descends_closes_and_lifts_in_that_order():
    from hilserl_ros.human import ScriptedPicker
    from hilserl_ros.sim.env import make_env

    env = make_env("pick_cube", seed=3, demonstrate=True)
    env.reset(seed=3)
    phases, grips = [], []
    for _ in range(100):
        _, _, terminated, truncated, info = env.step(np.zeros(4))
        phases.append(env.human.phase)
        grips.append(float(info["action"][3]))
        if terminated or truncated:
            break
    assert info["success"]
    order = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert order == [ScriptedPicker.HOVER, ScriptedPicker.DESCEND, ScriptedPicker.CLOSE, ScriptedPicker.LIFT]
    first_close = phases.index(ScriptedPicker.CLOSE)
    assert all(g == 1.0 for g in grips[:first_close])  # open on the way in
    assert all(g == -1.0 for g in grips[first_close + 1:])  # closed from the grasp on


def test_the_pick_operator_takes_over_a_stalled_policy_and_hands_back():
    from hilserl_ros.sim.env import make_env

    env = make_env("pick_cube", seed=1)
    env.reset(seed=1)
    flags = []
    for _ in range(60):
        _, _, terminated, truncated, info = env.step(np.zeros(4))  # the policy never moves
        flags.append(info["intervention"])
        if terminated or truncated:
            break
    patience, takeover = env.human.config.patience, env.human.config.takeover_steps
    assert not any(flags[:patience])  # it watches first
    first = flags.index(True)
    run = flags[first:].index(False) if False in flags[first:] else len(flags) - first
    assert run <= takeover  # and lets go after takeover_steps at most
    assert info["success"] or False in flags[first:]


def test_the_pick_operator_reopens_when_the_policy_closed_on_nothing():
    from hilserl_ros.human import PickConfig, ScriptedPicker

    picker = ScriptedPicker(PickConfig(patience=2, jitter=0.0))
    cube, ee = np.array([0.2, 0.0, 0.02]), np.array([0.2, 0.05, 0.08])  # 5 cm beside it, gripper shut
    actions = [picker.step(ee, cube, gripper=0.0) for _ in range(4)]
    assert actions[0] is None and actions[1] is None and actions[2] is not None
    assert picker.phase == ScriptedPicker.REOPEN and actions[2][3] == 1.0  # open first
    action = picker.step(ee, cube, gripper=1.2)  # open now: go above the cube
    assert picker.phase == ScriptedPicker.HOVER and action[1] < 0 and action[3] == 1.0
