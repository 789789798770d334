"""The field report's experiment as one command: the same simulated training run three times,
with target_entropy = -action_dim throughout (what the report ran with: alpha collapsed and the
arm never left home), -action_dim/2 throughout (the HIL-SERL default), and -action_dim switched
to -action_dim/2 mid-run, as the report's user fixed it, through /learner's SetParameters (the
service `ros2 param set /learner target_entropy -2.0` calls). Plots alpha, the policy's mean
|action| and its success rate over environment steps, the switch marked.

    python -m hilserl_ros.entropy_experiment [--minutes 6] [--switch-at 3] [--out DIR] [name:=value ...]

Each run is ``hilserl_ros.train --full-time`` (no early stop: the three run equally long). The
launch arguments default to the report's conditions as far as the simulation reproduces them
(``REPORT_CONDITIONS``); any given replace them. Writes <out>/entropy_experiment.png and
<out>/entropy_experiment.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys

from hilserl_ros.observation import ACTION_DIM

LOW, DEFAULT = -float(ACTION_DIM), -ACTION_DIM / 2.0
# the report: pick from cameras, action_scale 0.02 (ik.yaml's default), discount 0.97 and UTD 2
# (the learner's defaults) ...
REPORT_CONDITIONS = {"task": "pick_cube", "observation": "pixels"}
# ... and temperature_init 0.2: /learner's live `temperature` (it resets alpha), set before the
# first update
REPORT_LEARNER = {"temperature": 0.2}


def runs(switch_minutes: float) -> list[tuple[str, float, list[str]]]:
    """(label, target_entropy at start, extra train arguments) of the three runs."""
    return [
        (f"{LOW:+.0f} throughout (field report)", LOW, []),
        (f"{DEFAULT:+.0f} throughout (HIL-SERL)", DEFAULT, []),
        (f"{LOW:+.0f}, then {DEFAULT:+.0f} at {switch_minutes:g} min (the report's fix)", LOW,
         ["--set-at", str(switch_minutes), f"target_entropy={DEFAULT}"]),
    ]


def read_csv(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [{k: float(v) if v not in ("", None) and k != "end_reason" else v for k, v in row.items()}
                for row in csv.DictReader(fh)]


def rolling_success(history: list[dict], window: int) -> tuple[list[float], list[float]]:
    """Policy-alone success (no intervention) over the last ``window`` episodes, by env step."""
    alone = [float(e["success"] and e["intervention_rate"] == 0) for e in history]
    rates = [sum(alone[max(0, i - window + 1):i + 1]) / len(alone[max(0, i - window + 1):i + 1])
             for i in range(len(alone))]
    return [e["total_steps"] for e in history], rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="length of each run")
    parser.add_argument("--switch-at", type=float, default=None, help="minute of the switch (default: half-way)")
    parser.add_argument("--window", type=int, default=20, help="episodes the success rate is taken over")
    parser.add_argument("--demos", type=int, default=None, help="scripted demonstrations first (pick_cube: 20)")
    parser.add_argument("--learner", action="append", default=[], metavar="NAME=VALUE",
                        help="a live /learner parameter set at the start of all three runs (default: "
                             + ", ".join(f"{k}={v}" for k, v in REPORT_LEARNER.items()) + ")")
    parser.add_argument("--out", default=os.path.join("runs", "entropy-experiment"))
    parser.add_argument("arguments", nargs="*", help="launch arguments for all three runs, name:=value")
    opts = parser.parse_args(argv)
    switch = opts.switch_at if opts.switch_at is not None else opts.minutes / 2
    given = dict(a.split(":=", 1) for a in opts.arguments if ":=" in a)
    conditions = {**REPORT_CONDITIONS, **given}
    learner = {**REPORT_LEARNER, **{k: float(v) for k, v in (a.split("=", 1) for a in opts.learner)}}
    at_start = [arg for k, v in learner.items() for arg in ("--set-at", "0", f"{k}={v}")]
    demos = opts.demos if opts.demos is not None else (20 if conditions["task"] == "pick_cube" else 0)
    os.makedirs(opts.out, exist_ok=True)
    results = {}
    for i, (label, target, extra) in enumerate(runs(switch)):
        run_dir = os.path.join(opts.out, f"run{i + 1}")
        print(f"[experiment] run {i + 1}/3, {label}: {opts.minutes:g} min -> {run_dir}", flush=True)
        result = os.path.join(run_dir, "result.json")
        subprocess.run([sys.executable, "-m", "hilserl_ros.train", "--minutes", str(opts.minutes), "--full-time",
                        "--window", str(opts.window), "--target-entropy", str(target), "--demos", str(demos),
                        "--run-dir", run_dir, "--result-json", result, *at_start, *extra,
                        *[f"{k}:={v}" for k, v in conditions.items()]], check=False)
        record = json.load(open(result)) if os.path.exists(result) else {}
        results[label] = {"stats": read_csv(os.path.join(run_dir, "learner_stats.csv")),
                          "history": read_csv(os.path.join(run_dir, "history.csv")), "record": record}
    path = plot(results, opts.out, opts.window, {**conditions, **learner})
    summary = {}
    for label, r in results.items():
        tail = r["stats"][-10:]
        final = {k: (sum(row.get(k, float("nan")) for row in tail) / len(tail) if tail else float("nan"))
                 for k in ("alpha", "action_abs_mean", "policy_mean_abs")}
        steps, rates = rolling_success(r["history"], opts.window)
        summary[label] = {"final_alpha": round(final["alpha"], 5), "final_action_abs_mean": round(final["action_abs_mean"], 3),
                          "final_policy_mean_abs": round(final["policy_mean_abs"], 3),
                          "final_policy_success": rates[-1] if rates else 0.0, "env_steps": steps[-1] if steps else 0,
                          "watchdog": r["record"].get("collapse_flagged"), "switches": r["record"].get("switches", [])}
        flagged = summary[label]["watchdog"]
        print(f"[experiment] {label}: alpha {final['alpha']:.4f}, policy's mean |action| {final['policy_mean_abs']:.3f} "
              f"(sampled {final['action_abs_mean']:.3f}), "
              f"policy success {summary[label]['final_policy_success']:.0%} at {summary[label]['env_steps']} steps; "
              + (f"watchdog flagged alpha collapse at {flagged['env_steps']} steps" if flagged else "no alpha collapse flagged"))
    with open(os.path.join(opts.out, "entropy_experiment.json"), "w") as fh:
        json.dump({"conditions": conditions, "learner": learner, "minutes": opts.minutes, "switch_at_minutes": switch, "demos": demos,
                   "runs": summary}, fh, indent=1)
    print(f"[experiment] plot {path}")
    return 0


def plot(results: dict, out: str, window: int, conditions: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for (label, r), color in zip(results.items(), ("tab:red", "tab:blue", "tab:green")):
        rows = r["stats"]
        steps = [row.get("env_steps", 0) for row in rows]
        axes[0].plot(steps, [row["alpha"] for row in rows], color=color, label=label)
        axes[1].plot(steps, [row.get("policy_mean_abs", float("nan")) for row in rows], color=color, label=label)
        axes[1].plot(steps, [row["action_abs_mean"] for row in rows], color=color, linestyle=":", alpha=0.6)
        x, rates = rolling_success(r["history"], window)
        axes[2].plot(x, rates, color=color, label=label)
        for switch in r["record"].get("switches", []):
            if switch["name"] != "target_entropy":
                continue  # the start values (--learner) are set at step 0: not a switch
            for ax in axes:
                ax.axvline(switch["env_steps"], color=color, linestyle="--", alpha=0.7)
    axes[0].set(title="temperature alpha", xlabel="environment step", yscale="log")
    axes[1].set(title="policy's mean |action| without noise (dotted: sampled)", xlabel="environment step",
                ylim=(0, 1))
    axes[1].axhline(0.1, color="grey", linestyle=":", label="watchdog: |action| floor")
    axes[2].set(title=f"policy success (no intervention), last {window} episodes", xlabel="environment step",
                ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=8)
    fig.suptitle(", ".join(f"{k}:={v}" for k, v in conditions.items()) + "; dashed: target_entropy switched")
    fig.tight_layout()
    path = os.path.join(out, "entropy_experiment.png")
    fig.savefig(path, dpi=100)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
