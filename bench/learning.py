"""Does reach learn, every time? Trains ``reach`` from state with 3 fixed seeds, once in the
ROS-free env (hilserl_ros.sim.train_env) and once through the full graph (``make train``'s
path: hilserl_ros.train, the same parameter files), one run at a time, each in its own process,
and writes bench/results/learning.json with every run as it came out (no best-of).

    make bench-learning [ARGS="--seeds 0 1 2 --env-minutes 3 --graph-minutes 15"]

``reached``: the policy alone (no intervention) succeeded in 90% of the last 20 episodes;
``minutes``: wall clock from the start of the run to that point (graph: from the launch, node
start-up included). Targets (issue 11): every graph run within 15 min, median under 5; every
env run within 3 min.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import versions, write


def run(command: list[str], log_path: str, result_path: str) -> dict:
    start = time.monotonic()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if not os.path.exists(result_path):
        raise RuntimeError(f"{' '.join(command)} exited {code} without a result; see {log_path}")
    with open(result_path) as fh:
        record = json.load(fh)
    record["process_wall_minutes"] = round(wall / 60, 3)
    return record


def describe(runs: list[dict], where: str) -> str:
    mine = [r for r in runs if r["where"] == where]
    minutes = [r["minutes"] for r in mine]
    reached = sum(r["reached"] for r in mine)
    return (f"{where}: {reached}/{len(mine)} seeds reached 90% policy success, minutes "
            f"{', '.join(f'{m:.1f}' for m in minutes)} (median {statistics.median(minutes):.1f}), env steps "
            f"{', '.join(str(r['env_steps']) for r in mine)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env-minutes", type=float, default=3.0)
    parser.add_argument("--graph-minutes", type=float, default=15.0)
    parser.add_argument("--only", choices=("env", "graph"), default=None, help="run one side only")
    opts = parser.parse_args(argv)
    from tqdm import tqdm

    workdir = tempfile.mkdtemp(prefix="bench-learning-")
    print(f"[bench-learning] logs and run directories in {workdir}")
    plan = [(where, seed) for where in ("env", "graph") if opts.only in (None, where) for seed in opts.seeds]
    runs = []
    for where, seed in tqdm(plan, desc="runs", unit="run"):
        out = os.path.join(workdir, f"{where}-{seed}")
        result = out + ".json"
        if where == "env":
            command = [sys.executable, "-m", "hilserl_ros.sim.train_env", "--task", "reach", "--seed", str(seed),
                       "--minutes", str(opts.env_minutes), "--result-json", result]
        else:
            command = [sys.executable, "-m", "hilserl_ros.train", "--minutes", str(opts.graph_minutes),
                       "--run-dir", out, "--result-json", result, "task:=reach", f"seed:={seed}"]
        record = run(command, out + ".log", result)
        record["command"] = " ".join([os.path.basename(command[0])] + command[1:]).replace(workdir, "$WORKDIR")
        runs.append(record)
        tqdm.write(f"[bench-learning] {where} seed {seed}: reached={record['reached']} in {record['minutes']:.1f} min, "
                   f"{record['episodes']} episodes, {record['env_steps']} env steps, policy success "
                   f"{record['final_policy_success']:.0%}, intervention {record['final_intervention_rate']:.0%}")
    summary = {where: describe(runs, where) for where in ("env", "graph") if any(r["where"] == where for r in runs)}
    path = write("learning", {"date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs, "summary": summary,
                              "versions": versions("ros-rclpy", "torch", "mujoco", "pin")})
    for line in summary.values():
        print(f"[bench-learning] {line}")
    print(f"[bench-learning] wrote {path}")
    ok_env = all(r["reached"] and r["minutes"] <= opts.env_minutes for r in runs if r["where"] == "env")
    graph = [r for r in runs if r["where"] == "graph"]
    ok_graph = all(r["reached"] for r in graph) and (not graph or statistics.median(r["minutes"] for r in graph) < 5)
    return 0 if ok_env and ok_graph else 1


if __name__ == "__main__":
    sys.exit(main())
