"""Seeded visual cells of the simulated SO-101 (hilserl_ros.sim.cells): deterministic,
visibly different, physics untouched, the cube always in view."""
import dataclasses
import json

import mujoco
import numpy as np
import pytest

from hilserl_ros.sim.cells import SHIPPED, VisualCell, apply_effects, sample_cell
from hilserl_ros.sim.env import EnvConfig, SO101Env
from hilserl_ros.sim.world import SO101World

CELLS = (0, 1, 2, 3, 7)


def front(task, cell, seed=0):
    world = SO101World(task, seed=seed, cell=cell)
    try:
        return world.render("front"), world.render("wrist")
    finally:
        world.close()


def test_a_seed_gives_one_cell_and_one_frame():
    a, b = sample_cell(5), sample_cell(5)
    assert a == b and isinstance(a, VisualCell)
    assert json.loads(json.dumps(a.to_dict())) == json.loads(json.dumps(b.to_dict()))
    assert sample_cell(6) != a and SHIPPED is None
    assert sample_cell(0) != sample_cell(1)  # seed 0 is an ordinary cell
    for x, y in zip(front("pick_cube", a, seed=2), front("pick_cube", b, seed=2)):
        assert np.array_equal(x, y)


def test_the_shipped_cell_renders_as_without_cells():
    # the same world twice: no effects, no noise (bit-identical frames)
    for x, y in zip(front("pick_cube", None), front("pick_cube", SHIPPED)):
        assert np.array_equal(x, y)


def test_cells_look_clearly_different_from_the_shipped_cell():
    shipped = front("pick_cube", None)
    for seed in CELLS:
        frames = front("pick_cube", sample_cell(seed))
        for camera, base, frame in zip(("front", "wrist"), shipped, frames):
            diff = np.abs(frame.astype(int) - base.astype(int)).mean()
            assert diff > 15.0, (seed, camera, diff)


def test_a_cell_changes_no_physics():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (15, 4))
    actions[:, 3] = np.where(np.arange(15) < 8, 1.0, -1.0)  # open, then close
    finals = []
    for cell in (None, 1, 3):
        env = SO101Env(dataclasses.replace(EnvConfig(task="pick_cube"), cell=cell), seed=4)
        env.reset(seed=4)
        for a in actions:
            env.step(a)
        w = env.world
        finals.append((w.joint_state()[0], w.data.qpos.copy(), w.data.xpos[w.block_body].copy(),
                       w.model.nbody, w.model.body_mass.copy()))
        env.close()
    for other in finals[1:]:
        assert np.allclose(finals[0][0], other[0]) and np.allclose(finals[0][2], other[2])
        assert np.array_equal(finals[0][1], other[1])  # bit for bit
        # distractors are extra static bodies: the original bodies' masses stay
        assert np.array_equal(finals[0][4], other[4][:finals[0][3]])


def test_distractors_are_visual_only_and_outside_the_workspace():
    for seed in range(40):
        cell = sample_cell(seed)
        world = SO101World("reach", seed=0, cell=cell)
        for i, d in enumerate(cell.distractors):
            geom = world.model.geom(world.model.body(f"distractor_{i}").geomadr[0])
            assert geom.contype[0] == 0 and geom.conaffinity[0] == 0 and geom.group[0] == 0
            x, y = d["pos"][:2]
            assert abs(y) >= 0.18 or x >= 0.36, d
        target = world.model.geom(world.model.body("target").geomadr[0])
        assert np.allclose(target.rgba, [0.1, 0.9, 0.2, 0.5])  # the goal marker keeps its colour
        assert cell.cube_rgba[3] == 1.0
        world.close()


@pytest.mark.parametrize("seed", CELLS)
def test_a_cell_never_hides_the_cube(seed):
    world = SO101World("pick_cube", seed=1, cell=sample_cell(seed))
    try:
        q = world.joint_state()[0]
        with_cube = world.render("front").astype(int)
        world.show(q, None, world.block_start + [0.0, 0.0, -1.0])  # the cube under the floor
        without = world.render("front").astype(int)
    finally:
        world.close()
    changed = np.abs(with_cube - without).sum(axis=2) > 60
    assert changed.sum() >= 25, changed.sum()  # a 4 cm cube is ~10x10 px at 128 px


def test_effects_keep_shape_and_type_and_draw_new_noise_each_frame():
    cell = dataclasses.replace(sample_cell(2), noise_sigma=4.0, blur_sigma=0.8)
    frame = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    a, b = apply_effects(cell, frame, rng), apply_effects(cell, frame, rng)
    assert a.dtype == np.uint8 and a.shape == frame.shape
    assert not np.array_equal(a, b)  # noise differs frame to frame
    assert np.array_equal(apply_effects(cell, frame, np.random.default_rng(1)), a)  # and follows the generator
    assert apply_effects(None, frame, rng) is frame
