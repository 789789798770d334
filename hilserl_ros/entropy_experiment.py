"""The field report's experiment as one command: the same simulated training run with
target_entropy = -action_dim (what the report ran with: alpha collapsed to 0.03 and the arm
never left home) and with -action_dim/2 (the HIL-SERL default), plotting alpha and the mean
|action| of the policy over training.

    python -m hilserl_ros.entropy_experiment [--minutes 3] [--out runs/entropy-experiment]

Each run is ``hilserl_ros.train`` with a fixed duration (no early stop), its target_entropy set
on /learner through SetParameters at start. Writes <out>/entropy_experiment.png.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys

from hilserl_ros.observation import ACTION_DIM

TARGETS = {"-action_dim (field report)": -float(ACTION_DIM), "-action_dim/2 (HIL-SERL)": -ACTION_DIM / 2.0}


def read_rows(path: str) -> list[dict]:
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each run")
    parser.add_argument("--out", default=os.path.join("runs", "entropy-experiment"))
    parser.add_argument("arguments", nargs="*", help="launch arguments for both runs, name:=value")
    opts = parser.parse_args(argv)
    os.makedirs(opts.out, exist_ok=True)
    results = {}
    for label, target in TARGETS.items():
        run_dir = os.path.join(opts.out, f"target{target:+.0f}")
        print(f"[experiment] {label}: target_entropy {target} for {opts.minutes:g} min -> {run_dir}", flush=True)
        # target above 1: never reached, so every run lasts the same time
        subprocess.run([sys.executable, "-m", "hilserl_ros.train", "--minutes", str(opts.minutes), "--target", "1.01",
                        "--target-entropy", str(target), "--run-dir", run_dir, *opts.arguments], check=False)
        results[label] = read_rows(os.path.join(run_dir, "learner_stats.csv"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_alpha, ax_action) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in results.items():
        updates = [r["update"] for r in rows]
        ax_alpha.plot(updates, [r["alpha"] for r in rows], label=label)
        ax_action.plot(updates, [r["action_abs_mean"] for r in rows], label=label)
    ax_alpha.set(title="temperature alpha", xlabel="learner update", yscale="log")
    ax_action.set(title="mean |action| of the policy (before action_scale)", xlabel="learner update", ylim=(0, 1))
    ax_alpha.legend()
    fig.tight_layout()
    path = os.path.join(opts.out, "entropy_experiment.png")
    fig.savefig(path, dpi=100)
    for label, rows in results.items():
        tail = rows[-10:] or [{"alpha": float("nan"), "action_abs_mean": float("nan")}]
        print(f"[experiment] {label}: final alpha {sum(r['alpha'] for r in tail) / len(tail):.4f}, "
              f"mean |action| {sum(r['action_abs_mean'] for r in tail) / len(tail):.3f}")
    print(f"[experiment] plot {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
