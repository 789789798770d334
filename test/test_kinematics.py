"""Kinematics on the URDF: agrees with the MuJoCo model, solves reachable targets to well under
1 mm, and reports (and clamps) what cannot be reached."""
import mujoco
import numpy as np
import pytest

from hilserl_ros.kinematics import SO101Kinematics, WorkspaceBox
from hilserl_ros.sim.world import DEFAULT_BOX, SO101World


@pytest.fixture(scope="module")
def kin():
    return SO101Kinematics()


def test_urdf_forward_kinematics_matches_the_mujoco_arm(kin):
    world = SO101World("reach")
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.uniform(kin.lower, kin.upper)
        with world.lock:
            world.data.qpos[world.qpos_index] = q
            mujoco.mj_forward(world.model, world.data)
        assert np.allclose(kin.position(q), world.ee_position(), atol=1e-5)  # 10 um: URDF rounding


def test_random_reachable_targets_are_solved_to_under_a_millimetre(kin):
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(200):
        q_true = rng.uniform(kin.lower * 0.8, kin.upper * 0.8)
        start = np.clip(q_true + rng.normal(0, 0.4, 6), kin.lower, kin.upper)
        result = kin.solve(kin.position(q_true), start)
        assert np.all(result.q >= kin.lower - 1e-12) and np.all(result.q <= kin.upper + 1e-12)
        errors.append(result.position_error)
    assert max(errors) < 1e-3, f"worst {max(errors) * 1000:.2f} mm"


def test_gripper_joint_is_passed_through(kin):
    q = np.array([0.1, -0.5, 0.6, 0.3, 0.2, 0.9])
    result = kin.solve(kin.position(q) + [0.01, 0.0, 0.0], q)
    assert result.converged and result.q[5] == 0.9


def test_unreachable_target_is_reported_not_faked(kin):
    q = np.zeros(6)
    result = kin.solve([1.0, 0.0, 0.2], q)  # a metre away: the arm is ~0.4 m long
    assert not result.converged and result.position_error > 0.3
    assert np.all(result.q >= kin.lower) and np.all(result.q <= kin.upper)


def test_workspace_box_clamps_and_validates():
    box = WorkspaceBox(*DEFAULT_BOX)
    inside, clamped = box.clamp([0.2, 0.0, 0.1])
    assert not clamped and np.allclose(inside, [0.2, 0.0, 0.1])
    point, clamped = box.clamp([0.5, -0.3, 0.0])
    assert clamped and np.allclose(point, [DEFAULT_BOX[1][0], DEFAULT_BOX[0][1], DEFAULT_BOX[0][2]])
    with pytest.raises(ValueError, match="lower < upper"):
        WorkspaceBox([0.3, 0, 0], [0.2, 1, 1])


def test_every_point_of_the_default_box_is_reachable(kin):
    lo, hi = map(np.asarray, DEFAULT_BOX)
    home = np.array([0.0, -1.2, 1.2, 0.75, 0.0, 0.0])
    for corner in [np.array([x, y, z]) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]:
        assert kin.solve(corner, home).converged, corner
