"""Does it learn? The ROS-free env (the graph's pieces and config/, hilserl_ros.sim.env) with
the learner core unchanged must learn reach from state within a fixed budget of env steps.

The budget (3000 env steps, about 3x what the seeds need today: see bench/results/learning.json)
is in steps, not seconds, so the verdict does not depend on the machine. The last test shows
that the check notices broken learning: with the actor's optimiser step skipped the same run
stays far below the bar. ``HILSERL_BREAK_UPDATE=actor`` breaks the update in the first test
too, to watch it fail:

    HILSERL_BREAK_UPDATE=actor make test PYTEST_ARGS="test/test_learning.py -k learns"
"""
import os

import pytest

from hilserl_ros.sim.train_env import train_env

pytestmark = pytest.mark.slow

BUDGET = 3000  # env steps
BAR = 0.8  # policy success (no intervention) over the last 20 episodes


def skip_actor_step(agent, sample):
    """A broken update: critics and temperature learn, the actor's optimiser never steps."""
    agent.actor_opt.step = lambda *args, **kwargs: None
    return agent.update(sample)


def hook_from_environment():
    return skip_actor_step if os.environ.get("HILSERL_BREAK_UPDATE") == "actor" else None


@pytest.mark.parametrize("seed", [0, 1])
def test_the_env_learns_reach_within_the_step_budget(seed):
    result = train_env("reach", seed=seed, max_env_steps=BUDGET, max_minutes=30, target=BAR,
                       update_hook=hook_from_environment())
    assert result.reached, (f"seed {seed}: policy success {result.final_policy_success:.0%} over the last 20 "
                            f"episodes after {result.env_steps} env steps ({result.episodes} episodes, "
                            f"intervention {result.final_intervention_rate:.0%}, alpha {result.final_alpha:.4f})")
    assert result.final_policy_success >= BAR and result.env_steps <= BUDGET


def test_a_broken_actor_update_fails_the_bar():
    result = train_env("reach", seed=0, max_env_steps=BUDGET, max_minutes=30, target=BAR,
                       update_hook=skip_actor_step)
    assert not result.reached and result.final_policy_success < 0.5
    assert result.updates > 1000  # it did train (critics, alpha): only the actor was broken
