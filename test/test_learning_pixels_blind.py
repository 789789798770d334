"""The control of test_learning_pixels.py's reach from pixels on an unseen cell: the same run
(seed, cell, configuration, scripted operator) with black camera frames must not reach the bar
in more steps than the seeing runs needed (BLIND_STEPS). What was learnt came from the
pictures, not from the proprioception or the operator's help. A file of its own, so that a
parallel worker runs it beside the seeing run."""
import dataclasses

import pytest

from hilserl_ros.sim.env import EnvConfig
from hilserl_ros.sim.train_env import train_env
from test_learning_pixels import BLIND_STEPS, PIXEL_BAR, UNSEEN_CELL

pytestmark = pytest.mark.slow


def test_the_same_run_with_black_frames_does_not_reach_the_bar():
    cell = dataclasses.replace(EnvConfig.from_graph("reach"), cell=UNSEEN_CELL)
    blind = train_env("reach", seed=0, max_env_steps=BLIND_STEPS, max_minutes=30, target=PIXEL_BAR,
                      observation="pixels", env_config=cell, blank_frames=True)
    assert blind.env_steps >= BLIND_STEPS - 100  # it used the whole budget (the 30 min never cut it)
    # blind, the policy can only guess where the target is: far from the bar, not just under it
    assert not blind.reached and blind.final_policy_success <= PIXEL_BAR - 0.25, (
        f"with black frames: policy success {blind.final_policy_success:.0%} after {blind.env_steps} env steps")
