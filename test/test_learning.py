"""Does it learn? The ROS-free env (the graph's pieces and config/, hilserl_ros.sim.env) with
the learner core unchanged must learn reach, and pick_cube with 20 scripted demonstrations,
from state within a fixed budget of env steps.

The budget (3000 env steps, about 3x what the seeds need today: see bench/results/learning.json)
is in steps, not seconds, so the verdict does not depend on the machine. The last test shows
that the check notices broken learning: with the actor's optimiser step skipped the same run
stays far below the bar. ``HILSERL_BREAK_UPDATE=actor`` breaks the update in the first test
too, to watch it fail:

    HILSERL_BREAK_UPDATE=actor make test PYTEST_ARGS="test/test_learning.py -k learns"

Learning from the cameras is in test_learning_pixels.py.

pick_cube's budget is 5000 env steps, about 2x what seeds 0-2 need today. (A grasp critic whose
optimiser never steps does not stop it: the actor learns to use the frozen critic's
state-dependent choice of close/stay/open. ``HILSERL_BREAK_UPDATE=grasp`` shows that.)
"""
import os

import pytest

from hilserl_ros.sim.train_env import train_env

pytestmark = pytest.mark.slow

BUDGET = 3000  # env steps
BAR = 0.8  # policy success (no intervention) over the last 20 episodes
PICK_BUDGET, PICK_DEMOS = 5000, 20


def skip_actor_step(agent, sample):
    """A broken update: critics and temperature learn, the actor's optimiser never steps."""
    agent.actor_opt.step = lambda *args, **kwargs: None
    return agent.update(sample)


def skip_grasp_step(agent, sample):
    """A broken update: all but the grasp critic learn (its optimiser never steps)."""
    agent.grasp_opt.step = lambda *args, **kwargs: None
    return agent.update(sample)


def hook_from_environment():
    return {"actor": skip_actor_step, "grasp": skip_grasp_step}.get(os.environ.get("HILSERL_BREAK_UPDATE", ""))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_env_learns_reach_within_the_step_budget(seed):
    result = train_env("reach", seed=seed, max_env_steps=BUDGET, max_minutes=30, target=BAR,
                       update_hook=hook_from_environment())
    assert result.reached, (f"seed {seed}: policy success {result.final_policy_success:.0%} over the last 20 "
                            f"episodes after {result.env_steps} env steps ({result.episodes} episodes, "
                            f"intervention {result.final_intervention_rate:.0%}, alpha {result.final_alpha:.4f})")
    assert result.final_policy_success >= BAR and result.env_steps <= BUDGET


@pytest.mark.parametrize("task, budget, demos", [("reach", BUDGET, 0), ("pick_cube", PICK_BUDGET, PICK_DEMOS)])
def test_a_broken_actor_update_fails_the_bar(task, budget, demos):
    result = train_env(task, seed=0, max_env_steps=budget, max_minutes=30, target=BAR, demo_episodes=demos,
                       update_hook=skip_actor_step)
    assert not result.reached and result.final_policy_success < 0.5
    assert result.updates > budget // 3  # it did train (critics, alpha): only the actor was broken


def test_the_env_learns_pick_cube_with_demonstrations_within_the_step_budget():
    result = train_env("pick_cube", seed=0, max_env_steps=PICK_BUDGET, max_minutes=30, target=BAR,
                       demo_episodes=PICK_DEMOS, update_hook=hook_from_environment())
    assert result.demo_successes >= 0.7 * PICK_DEMOS  # the teacher picks
    assert result.reached, (f"policy success {result.final_policy_success:.0%} over the last 20 episodes after "
                            f"{result.env_steps} env steps ({result.episodes} episodes, intervention "
                            f"{result.final_intervention_rate:.0%}, alpha {result.final_alpha:.4f})")
    assert result.final_policy_success >= BAR and result.env_steps <= PICK_BUDGET
