"""The field report's alpha collapse, watched for (ROS-free: /learner and train_env share it).

The report's arm "never left home": alpha had fallen to 0.03 and the policy's outputs sat near
zero. What is watched is the policy's action without its sampling noise, |tanh(mu)| over the
batch (``policy_mean_abs``): the sampled |action| stays near 0.5 while the noise is wide, and
hid every collapse measured here (bench/results/entropy_collapse.json). A collapse is flagged
once alpha < ``alpha_floor`` and that mean < ``action_floor`` held for ``window`` consecutive
statistics.

The warning says which knob to turn, from what was measured rather than from the report's
guess. Raising ``target_entropy`` (the report's fix) only moves alpha when the policy's entropy
is at its target; where it is above (every measured run), alpha only follows its learning rate
down and the target does nothing. Those runs collapsed because the entropy bonus,
alpha x entropy / (1 - discount) per step kept, rivalled the task's reward (sparse 0/1 with
``use_backup_entropy``): staying random paid as much as finishing. Resetting alpha lower
(``temperature``) brought them back.
"""
from __future__ import annotations

TARGET_SLACK = 0.5  # nats: an entropy this close to its target is "at" it (alpha is being tuned by it)


class CollapseWatchdog:
    """Flags an alpha collapse from the learner's statistics; remembers when it first fired
    and when it first cleared after that."""

    def __init__(self, alpha_floor: float = 0.02, action_floor: float = 0.1, window: int = 20):
        self.alpha_floor, self.action_floor, self.window = alpha_floor, action_floor, window
        self.streak = 0
        self.collapse = False
        self.statistics = 0
        self.fired = 0  # times it went from clear to flagged
        self.first_fire: dict | None = None
        self.recovered: dict | None = None

    def observe(self, stats: dict, **where) -> str | None:
        """One statistics message (the learner's update stats); ``where`` (env step, update)
        is kept with the events. Returns "fired", "cleared" or None."""
        self.statistics += 1
        low = stats["alpha"] < self.alpha_floor and stats["policy_mean_abs"] < self.action_floor
        self.streak = self.streak + 1 if low else 0
        was, self.collapse = self.collapse, self.streak >= self.window
        here = {**where, "alpha": round(float(stats["alpha"]), 5),
                "policy_mean_abs": round(float(stats["policy_mean_abs"]), 4)}
        if self.collapse and not was:
            self.fired += 1
            self.first_fire = self.first_fire or here
            return "fired"
        if was and not self.collapse:
            self.recovered = self.recovered or here
            return "cleared"
        return None

    def summary(self) -> dict:
        return {"alpha_floor": self.alpha_floor, "action_floor": self.action_floor, "window": self.window,
                "statistics": self.statistics, "first_fire": self.first_fire, "recovered": self.recovered,
                "fired": self.fired, "flagged_at_end": self.collapse}

    def warning(self, stats: dict, action_dim: int, discount: float) -> str:
        """The one line a person reads: what is low, for how long, and which knob to turn."""
        alpha, entropy, target = stats["alpha"], stats["entropy"], stats["target_entropy"]
        head = (f"alpha collapse: alpha={alpha:.4f} < {self.alpha_floor} and the policy's mean action "
                f"|tanh(mu)|={stats['policy_mean_abs']:.3f} < {self.action_floor} for {self.streak} statistics "
                f"(sampled |action| {stats.get('action_abs_mean', float('nan')):.2f}); entropy {entropy:+.2f} nats, "
                f"target_entropy {target:+.2f}. ")
        return head + advice(alpha, entropy, target, action_dim, discount)


def advice(alpha: float, entropy: float, target: float, action_dim: int, discount: float) -> str:
    default = -action_dim / 2.0
    if entropy <= target + TARGET_SLACK:
        if target < default:
            return (f"The entropy is at its target, which holds alpha down: raise it to HIL-SERL's -action_dim/2: "
                    f"ros2 param set /learner target_entropy {default:.1f}")
        return ("The entropy is at its target: raise it (ros2 param set /learner target_entropy ...) for more "
                "exploration")
    bonus = alpha * entropy / max(1e-6, 1.0 - discount)
    return (f"The entropy is above its target, so target_entropy is not what sets alpha (changing it does nothing "
            f"measurable). The entropy bonus alpha*entropy/(1-discount)={bonus:.2f} per step; where it rivals the "
            f"task's reward, staying random pays: lower alpha, e.g. ros2 param set /learner temperature "
            f"{alpha / 10:.4g} (it resets alpha; in simulation this recovered the policy)")
