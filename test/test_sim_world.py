"""The simulated tasks' success conditions, resets, torque and rendering."""
import mujoco
import numpy as np
import pytest

from hilserl_ros.kinematics import SO101Kinematics
from hilserl_ros.sim.world import HOME, SO101World


def drive_to(world, kin, point, seconds=1.5):
    q = kin.solve(point, world.joint_state()[0]).q
    world.set_joint_targets(q)
    world.step(seconds)


def test_reach_succeeds_within_two_centimetres_only():
    world, kin = SO101World("reach", seed=3), SO101Kinematics()
    goal = world.task_state().goal
    assert world.box[0].tolist() <= goal.tolist() or np.all(goal >= world.box[0])
    drive_to(world, kin, goal + [0.0, 0.0, 0.05])  # 5 cm above: not there yet
    far = world.task_state()
    assert not far.success and 0.03 < far.distance < 0.07 and far.reward == pytest.approx(-far.distance)
    drive_to(world, kin, goal)
    near = world.task_state()
    assert near.success and near.distance <= 0.02 and near.reward == pytest.approx(1.0 - near.distance)


def test_a_lifted_cube_counts_only_when_both_jaws_hold_it():
    world = SO101World("pick_cube", seed=1)
    start = world.block_start.copy()
    for lift in (0.03, 0.06):  # floating up there (pushed, thrown): never a success
        with world.lock:
            adr = world.block_qpos
            world.data.qpos[adr:adr + 3] = start + [0, 0, lift]
            world.data.qvel[:] = 0
            mujoco.mj_forward(world.model, world.data)
        state = world.task_state()
        assert not state.success and world.jaws_touching() == (False, False), lift
        assert state.reward == pytest.approx(-state.distance - 0.1 - 2.0 * 0.05)  # not held: no lift counts


def test_pick_cube_succeeds_when_the_jaws_hold_it_five_centimetres_up():
    from hilserl_ros.sim.env import make_env

    env = make_env("pick_cube", seed=2, demonstrate=True)  # the scripted operator picks it
    env.reset(seed=2)
    world, states = env.unwrapped.world, []
    for _ in range(100):
        _, reward, terminated, truncated, info = env.step(np.zeros(4))
        states.append((world.task_state(), world.jaws_touching(), reward))
        if terminated or truncated:
            break
    final, jaws, reward = states[-1]
    assert final.success and jaws == (True, True)
    assert final.goal[2] - world.block_start[2] >= 0.05
    assert reward == pytest.approx(1.0 - final.distance, abs=1e-4)  # lifted and held: no cost left
    # before: held but not high enough is not a success, every such step costs, less as it rises
    held = [(s, r) for s, j, r in states[:-1] if j == (True, True)]
    assert held and not any(s.success for s, _ in held)
    assert all(r < 0 for _, r in held) and held[-1][1] > held[0][1]


def test_reset_draws_goals_inside_the_box_reproducibly():
    a, b = SO101World("reach", seed=7), SO101World("reach", seed=7)
    goals = []
    for _ in range(10):
        ga, gb = a.reset().goal, b.reset().goal
        assert np.array_equal(ga, gb)
        assert np.all(ga >= a.box[0]) and np.all(ga <= a.box[1])
        goals.append(ga)
    assert len({tuple(g) for g in goals}) == 10
    assert np.allclose(a.joint_state()[0], HOME)


def test_torque_off_goes_limp_and_on_holds():
    world = SO101World("reach")
    world.step(0.5)
    world.set_torque(False)
    world.step(1.0)
    sagged = world.joint_state()[0]
    assert np.abs(sagged - HOME).max() > 0.05  # gravity wins without torque
    world.set_torque(True)
    world.set_joint_targets(HOME)
    world.step(1.5)
    assert np.abs(world.joint_state()[0] - HOME).max() < 0.05


def test_camera_renders_rgb_uint8():
    world = SO101World("reach", render_size=64)
    image = world.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 5


def test_an_unstable_state_is_counted_and_time_never_runs_back():
    world = SO101World("pick_cube", seed=0)
    world.step(0.1)
    before = world.time
    with world.lock:
        world.data.qvel[world.qvel_index[0]] = np.nan  # what a blown-up contact leaves behind
    world.step(0.01)
    assert world.unstable_resets == 1
    assert world.time == pytest.approx(before + 0.01)  # MuJoCo's reset sets time to 0; /clock must not


def test_a_reset_never_shows_time_zero_to_another_thread():
    """/sim's physics thread paces simulated time against the wall clock from world.time; a
    reset (from the service thread) passed through time 0, and a read at that instant made it
    wait minutes. Time read from another thread during resets never goes below where it was."""
    import threading

    world = SO101World("reach", seed=0)
    world.step(1.0)
    start = world.time
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            seen.append(world.time)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):
            world.reset()
    finally:
        stop.set()
        reader.join()
    assert seen and min(seen) >= start
