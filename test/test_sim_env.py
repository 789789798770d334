"""The ROS-free SO-101 env (hilserl_ros.sim.env): the graph's configuration, its action path
and the scripted operator's intervention flag."""
import numpy as np
import pytest

from hilserl_ros.observation import OBS_DIM
from hilserl_ros.sim.env import EnvConfig, SO101Env, make_env


def test_config_comes_from_the_graph_parameter_files():
    config = EnvConfig.from_graph("reach")
    assert config.action_scale == pytest.approx(0.02)
    assert config.control_rate == pytest.approx(10.0)
    assert config.human["patience"] >= 1


def test_a_saturated_action_moves_the_end_effector_by_about_action_scale():
    env = SO101Env(EnvConfig(), seed=0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (OBS_DIM,)
    start = info["ee_position"]
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(np.array([0.0, 0.0, 1.0, 0.0]))
    moved = info["ee_position"] - start
    assert moved[2] > 0.03  # three steps of 2 cm up, less settling
    assert abs(moved[0]) < 0.02 and abs(moved[1]) < 0.02
    assert reward == pytest.approx(-info["distance"] + (1.0 if info["success"] else 0.0))
    env.close()


def test_the_operator_takes_over_a_stuck_policy_and_flags_its_steps():
    env = make_env("reach", seed=1)
    env.reset(seed=1)
    flags = []
    for _ in range(40):
        _, _, terminated, truncated, info = env.step(np.zeros(4))  # a policy that never moves
        flags.append(info["intervention"])
        if info["intervention"]:
            assert np.any(info["action"][:3] != 0.0)  # the operator's action, not the policy's
        if terminated or truncated:
            break
    assert not flags[0] and any(flags)
    env.close()


def test_each_env_transition_shows_its_own_action_and_the_next_observations_reward():
    from hilserl_ros.action_effect import action_effect

    env = make_env("reach", seed=3, operator=False)
    rng = np.random.default_rng(3)
    rows = []
    obs, _ = env.reset(seed=3)
    for _ in range(300):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        rows.append((obs, info["action"], next_obs, reward, terminated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    effect = action_effect(*(np.array(column) for column in zip(*rows)))
    assert effect.sound() and effect.own > 0.6, str(effect)
    assert effect.reward_offset_m < 0.001, str(effect)
    # from pixels the state holds joints and EE only: the motion check stands, the reward one cannot
    pixel_state = [(o[:9], a, n[:9], r, t) for o, a, n, r, t in rows]
    effect = action_effect(*(np.array(column) for column in zip(*pixel_state)))
    assert effect.sound() and np.isnan(effect.reward_offset_m) and "no goal in the observation" in str(effect)


def test_a_held_cube_goes_up_as_commanded_without_sagging_back():
    """The loaded servos settle short of their targets; commands chain on the last target, so
    a lift command lifts by about action_scale per step instead of drifting down and back."""
    env = make_env("pick_cube", seed=0, demonstrate=True)
    env.reset(seed=0)
    for _ in range(100):
        _, _, terminated, truncated, info = env.step(np.zeros(4))
        if env.human.phase == "lift" or terminated or truncated:
            break
    assert env.human.phase == "lift"
    inner = env.unwrapped
    scale = inner.config.action_scale
    start = info["ee_position"]
    for _ in range(4):
        _, _, terminated, _, info = inner.step(np.array([0.0, 0.0, 1.0, 0.0]))
        if terminated:
            break
    moved = info["ee_position"] - start
    assert moved[2] > 2.5 * scale, moved  # 4 steps of 2 cm, less the settling
    assert np.linalg.norm(moved[:2]) < 0.01, moved
    assert all(inner.world.jaws_touching())  # still held
