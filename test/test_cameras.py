"""The simulated cameras (hilserl_ros.sim.render) and the frozen encoder trained on them
(hilserl_ros.vision.pretrain): the policy's two views show what a person would look at, and the
shipped encoder still finds the goal in frames it has never seen."""
import numpy as np
import pytest

from hilserl_ros.sim import render
from hilserl_ros.sim.world import SO101World
from hilserl_ros.vision import pretrain


def test_low_poly_meshes_keep_the_shape_with_a_tenth_of_the_faces():
    import os

    import mujoco

    from hilserl_ros.sim.world import scene_path

    spec = mujoco.MjSpec.from_file(scene_path())
    mesh = spec.meshes[1]
    triangles = render.read_binary_stl(os.path.join(os.path.dirname(scene_path()), spec.meshdir, mesh.file))
    vertices, faces = render.cluster_vertices(triangles, render.LOWPOLY_CELL)
    assert len(faces) < 0.2 * len(triangles)
    # every original vertex lies within a grid cell's diagonal of the low-poly surface's vertices
    original = triangles.reshape(-1, 3)[::50]
    nearest = np.min(np.linalg.norm(original[:, None] - vertices[None], axis=-1), axis=1)
    assert nearest.max() < np.sqrt(3) * render.LOWPOLY_CELL


def test_the_front_view_shows_the_reach_target_where_it_is():
    world = SO101World("reach", seed=2)
    try:
        with_target = world.render("front")
        world.data.mocap_pos[world.target_mocap] = [0, 0, -1]  # hide it
        import mujoco
        mujoco.mj_forward(world.model, world.data)
        without = world.render("front")
    finally:
        world.close()
    changed = np.abs(with_target.astype(int) - without.astype(int)).sum(-1) > 30
    assert with_target.shape == (128, 128, 3) and with_target.dtype == np.uint8
    assert 10 <= changed.sum() <= 400  # a 2 cm sphere: a few dozen pixels of 16384


def test_the_wrist_view_moves_with_the_gripper_and_sees_the_cube_below_it():
    import mujoco

    world = SO101World("pick_cube", seed=1)
    try:
        world.step(0.3)
        front_before, wrist_before = world.render("front"), world.render("wrist")
        with world.lock:  # the same instant without the cube
            cube = world.data.qpos[world.block_qpos:world.block_qpos + 3].copy()
            world.data.qpos[world.block_qpos:world.block_qpos + 3] = [0.0, 0.6, 0.02]
            mujoco.mj_forward(world.model, world.data)
        wrist_no_cube = world.render("wrist")
        with world.lock:
            world.data.qpos[world.block_qpos:world.block_qpos + 3] = cube
            mujoco.mj_forward(world.model, world.data)
        world.set_joint_targets([0.3, -0.6, 0.6, 1.2, 0.0, 0.5])
        world.step(1.0)
        front_after, wrist_after = world.render("front"), world.render("wrist")
    finally:
        world.close()
    assert np.abs(wrist_after.astype(int) - wrist_before.astype(int)).mean() > 5  # the whole view changed
    assert not np.array_equal(front_after, front_before)
    cube_pixels = (np.abs(wrist_before.astype(int) - wrist_no_cube.astype(int)).sum(-1) > 30).sum()
    assert cube_pixels > 500  # at the home pose the cube is right below the jaws, a large part of the view


def test_a_world_posed_for_rendering_shows_what_the_physics_world_shows():
    """/sim_camera renders its own copy of the world posed from /joint_states and the task state
    (SO101World.show); both cameras must show what the world running the physics shows, the
    wrist camera too, which moves with the gripper (it once stayed where the copy was built)."""
    world, copy = SO101World("pick_cube", seed=1), SO101World("pick_cube", seed=5)
    try:
        for target in ([0.3, -0.6, 0.6, 1.2, 0.0, 0.5], [-0.3, 0.2, 0.3, 1.0, 0.5, 1.0]):
            world.set_joint_targets(target)
            world.step(1.0)
            state = world.task_state()
            copy.show(world.joint_state()[0], state.goal, block=state.goal)
            for camera in ("front", "wrist"):
                difference = np.abs(world.render(camera).astype(int) - copy.render(camera).astype(int)).mean()
                assert difference < 3.0, (camera, target, difference)
    finally:
        world.close()
        copy.close()


@pytest.mark.parametrize("task, camera, bound_cm", [("reach", "front", 2.0), ("pick_cube", "front", 2.0)])
def test_the_shipped_encoder_finds_the_goal_in_new_frames(task, camera, bound_cm):
    models = pretrain.load()
    assert set(models) == {"front", "wrist"}
    info = pretrain.file_info()
    assert info["labels"] == list(pretrain.LABELS)
    images, labels = pretrain.collect(60, seed=12345, cameras=(camera,), progress=False)  # seeds never trained on
    errors = pretrain.evaluate(models[camera], images[camera], labels)
    for axis in ("goal_x", "goal_y", "goal_z"):
        assert errors[axis] < bound_cm, errors
