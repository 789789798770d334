"""Does it learn from the cameras? The ROS-free env (hilserl_ros.sim.env) with the learner core
unchanged, observations from the simulated cameras through the default camera encoder of
config/learner.yaml (a pretrained backbone, frozen, and a head the critic trains); a file of
its own so that a parallel test worker runs it beside the state tests of test_learning.py.

Reach from pixels, on a cell no encoder and no choice of this project ever saw (a seeded visual
variation of the simulated cell: camera pose, light, colours, distractors, sensor noise;
hilserl_ros.sim.cells): the policy sees the front camera and proprioception, no goal; bar 70%
within the step budget, then the policy alone on new targets, and with the target sphere drawn
10 cm away from the real one: it must follow the drawing (the goal is in the image only). The
same run with black frames must not reach the bar in as many steps: what was learnt came from
the pictures.

pick_cube from pixels is in test_learning_pixels_pick.py, the black-frames control in
test_learning_pixels_blind.py (files of their own: parallel workers run them side by side).
``HILSERL_BREAK_UPDATE=actor`` breaks the learning tests, to watch them fail (test_learning.py
has the negative controls that always run).
"""
import dataclasses

import pytest

from hilserl_ros.sim.env import EnvConfig
from hilserl_ros.sim.train_env import evaluate, train_env
from hilserl_ros.sim.world import SO101World
from test_learning import hook_from_environment

pytestmark = pytest.mark.slow

# reach from pixels (the target only in the front camera, no goal in the state) on visual cell 31
# (hilserl_ros.sim.cells; not one of the cells bench/learning_cells.py measures), the default
# encoder, seed 0: 50% policy success within 5000 env steps. It passed 50% at 2989 env steps
# (2026-12-07, after the head's dropout changed its random draws); on the bench's cell 1000 and
# on the shipped cell the same run passed 50% at 2344 and 2534 (bench/results/learning_cells.json)
PIXEL_BUDGET, PIXEL_BAR, UNSEEN_CELL = 5000, 0.5, 31
# the black-frames control (test_learning_pixels_blind.py) runs this many steps: more than any
# seeing run above needed
BLIND_STEPS = 3500


def decoy_target(render):
    """SO101World.render with the reach target drawn 10 cm (along y) from where it is."""
    import mujoco

    def draw(self, camera=None):
        with self.lock:
            true = self.data.mocap_pos[self.target_mocap].copy()
            self.data.mocap_pos[self.target_mocap] = true + [0.0, 0.1 if true[1] < 0 else -0.1, 0.0]
            mujoco.mj_kinematics(self.model, self.data)
        try:
            return render(self, camera)
        finally:
            with self.lock:
                self.data.mocap_pos[self.target_mocap] = true
                mujoco.mj_kinematics(self.model, self.data)
    return draw


@pytest.fixture(scope="module")
def unseen_cell() -> EnvConfig:
    return dataclasses.replace(EnvConfig.from_graph("reach"), cell=UNSEEN_CELL)


@pytest.fixture(scope="module")
def reach_on_an_unseen_cell(unseen_cell):
    return train_env("reach", seed=0, max_env_steps=PIXEL_BUDGET, max_minutes=30, target=PIXEL_BAR,
                     observation="pixels", env_config=unseen_cell, update_hook=hook_from_environment())


def test_the_env_learns_reach_from_pixels_on_an_unseen_cell_and_goes_where_its_camera_shows_the_target(
        monkeypatch, reach_on_an_unseen_cell, unseen_cell):
    result = reach_on_an_unseen_cell
    assert result.reached, (f"policy success {result.final_policy_success:.0%} over the last 20 episodes after "
                            f"{result.env_steps} env steps ({result.episodes} episodes, intervention "
                            f"{result.final_intervention_rate:.0%}, alpha {result.final_alpha:.4f})")
    # the goal is in the image only: the policy alone succeeds on new targets, and with the sphere
    # drawn 10 cm from the real target it goes to the drawing (a policy that knew the goal from
    # anything but the camera, or ignored it, would not mind the decoy)
    # (sampled actions, as the training bar counts them)
    seen = evaluate(result.agent, "reach", seed=500, episodes=40, observation="pixels", deterministic=False,
                    env_config=unseen_cell)
    monkeypatch.setattr(SO101World, "render", decoy_target(SO101World.render))
    fooled = evaluate(result.agent, "reach", seed=500, episodes=40, observation="pixels", deterministic=False,
                      env_config=unseen_cell)
    assert seen >= 0.3 and fooled <= 0.1, (seen, fooled)
