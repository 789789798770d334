"""Kinematics on the URDF: agrees with the MuJoCo model, solves reachable targets to well under
1 mm, and reports (and clamps) what cannot be reached."""
import mujoco
import numpy as np
import pytest

from hilserl_ros.kinematics import SO101Kinematics, WorkspaceBox
from hilserl_ros.sim.world import DEFAULT_BOX, HOME, SO101World


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


def test_top_down_ik_points_the_gripper_down_with_the_jaws_along_y_over_the_cube_region():
    from hilserl_ros.kinematics import APPROACH_AXIS, GRASP_TCP_OFFSET, JAW_AXIS
    from hilserl_ros.sim.world import CUBE_REGION

    kin = SO101Kinematics(tcp_offset=GRASP_TCP_OFFSET)
    (x0, y0), (x1, y1) = CUBE_REGION
    for x in np.linspace(x0, x1, 3):
        for y in np.linspace(y0, y1, 3):
            q = HOME
            for z in (0.03, 0.06, 0.075):  # at the cube, and held 5 cm up (the grasp point ~4 mm above its centre)
                result = kin.solve([x, y, z], q, top_down=True)
                q = result.q
                rot = kin.fk(q).rotation
                assert result.position_error < 3e-3, (x, y, z, result.position_error)
                assert kin.tilt(q) < 0.05, (x, y, z)
                assert rot[2, APPROACH_AXIS] < -0.99 and abs(rot[0, JAW_AXIS]) < 0.05
                assert np.allclose(kin.position(q), [x, y, z], atol=3e-3)
    # the TCP is the offset point in the gripper frame
    pose = kin.fk(q)
    assert np.allclose(kin.position(q), pose.translation + pose.rotation @ np.array(GRASP_TCP_OFFSET))


def test_top_down_ik_reports_a_pose_out_of_its_reach():
    from hilserl_ros.kinematics import GRASP_TCP_OFFSET

    kin = SO101Kinematics(tcp_offset=GRASP_TCP_OFFSET)
    result = kin.solve([0.30, 0.0, 0.15], HOME, top_down=True)  # too high and far to point down
    assert not result.converged


def test_the_gripper_target_ramps_to_the_last_open_or_close_command():
    from hilserl_ros.kinematics import GripperTarget

    g = GripperTarget(open_position=1.2, closed_position=0.0, max_step=0.5)
    assert g.update(0.0, measured=0.3) == pytest.approx(0.3)  # nothing asked: stays where it is
    assert [g.update(c, 0.3) for c in (1.0, 0.0, 0.0, 0.0)] == pytest.approx([0.8, 1.2, 1.2, 1.2])
    assert [g.update(c, 1.2) for c in (-1.0, 0.0, 0.0, 0.0)] == pytest.approx([0.7, 0.2, 0.0, 0.0])


def test_deltas_add_to_the_last_commanded_target_until_the_arm_is_far_from_it():
    from hilserl_ros.kinematics import EndEffectorTarget

    target = EndEffectorTarget(reanchor_distance=0.02)
    assert target.base([0.2, 0.0, 0.1]).tolist() == [0.2, 0.0, 0.1]  # nothing commanded yet: measured
    target.commanded([0.2, 0.0, 0.12])
    assert target.base([0.2, 0.0, 0.115]).tolist() == [0.2, 0.0, 0.12]  # 5 mm short (sag): the target
    assert target.base([0.2, 0.05, 0.1]).tolist() == [0.2, 0.05, 0.1]  # 5 cm off (a reset): measured
