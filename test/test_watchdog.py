"""The alpha-collapse watchdog (hilserl_ros.learning.watchdog): what it reads, when it fires and
clears, and which knob its warning names (from what was measured: bench/results/entropy_collapse.json)."""
from hilserl_ros.learning.watchdog import CollapseWatchdog


def stats(alpha=0.01, centre=0.05, sampled=0.5, entropy=2.5, target=-4.0):
    return {"alpha": alpha, "policy_mean_abs": centre, "action_abs_mean": sampled, "entropy": entropy,
            "target_entropy": target}


def test_it_reads_the_noise_free_action_and_fires_after_the_window_then_clears():
    dog = CollapseWatchdog(alpha_floor=0.02, action_floor=0.1, window=3)
    # the sampled |action| is 0.5 (wide noise) while the policy's own action sits at 0.05: a collapse
    assert [dog.observe(stats(), update=u) for u in (10, 20)] == [None, None]
    assert dog.observe(stats(), update=30) == "fired" and dog.collapse
    assert dog.first_fire == {"update": 30, "alpha": 0.01, "policy_mean_abs": 0.05}
    assert dog.observe(stats(), update=40) is None  # fires once
    assert dog.observe(stats(centre=0.4), update=50) == "cleared" and not dog.collapse
    assert dog.recovered["update"] == 50 and dog.fired == 1
    # a high alpha is no collapse whatever the action; a streak must be unbroken
    dog = CollapseWatchdog(0.02, 0.1, 2)
    for s in (stats(alpha=0.5), stats(), stats(centre=0.3), stats()):
        assert dog.observe(s) is None


def test_the_warning_names_the_knob_that_moves_alpha_here():
    dog = CollapseWatchdog(0.02, 0.1, 1)
    dog.observe(stats())
    # entropy above its target (every measured run): the target does not set alpha; lower alpha
    above = dog.warning(stats(alpha=0.015, entropy=2.6, target=-4.0), action_dim=4, discount=0.97)
    assert "target_entropy is not what sets alpha" in above
    assert "alpha*entropy/(1-discount)=1.30" in above and "ros2 param set /learner temperature 0.0015" in above
    # entropy at a target below HIL-SERL's: that target holds alpha down; raise it (the report's fix)
    at = dog.warning(stats(alpha=0.015, entropy=-3.8, target=-4.0), action_dim=4, discount=0.97)
    assert "ros2 param set /learner target_entropy -2.0" in at and "temperature" not in at.split(". ", 1)[1]
