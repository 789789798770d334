"""Does learning from pixels carry to a cell the encoder never saw? Trains reach and pick_cube
from the cameras (config/observation/<task>.yaml's ``pixels``) in the ROS-free env, on the
shipped simulated cell and on seeded visual variations of it (hilserl_ros.sim.cells: camera
pose and field of view, light, floor, arm and cube colours, distractors, sensor noise and
blur), once per camera encoder, and writes bench/results/learning_cells.json.

    make bench-learning ARGS="--observation pixels --cells 3 [--encoders efficientnet-lite0:stage7 so101]
                              [--tasks reach pick_cube] [--seeds 0 1 2] [--jobs 2]"

- Unseen cells are ``--first-cell`` + 0 .. N-1; run i trains seed ``seeds[i % len(seeds)]`` on
  cell i % N, for max(N, len(seeds)) runs per task and encoder. The shipped cell gets one run
  per seed. Neither the encoders nor their choice ever saw these cells (the so101 encoder was
  trained on the shipped cell's frames; the backbones on ImageNet).
- The figure of merit is env steps to the target (reach 90%, pick_cube 80% policy success
  over 20 episodes; pick_cube with 20 scripted demonstrations recorded in the same cell).
  A run that does not reach the target in its budget counts with the steps it took and is
  marked: the ratio is then a lower bound.
- Target (issue 23): the default encoder's median env steps on unseen cells at most 1.25x its
  median on the shipped cell, for both tasks.
- Runs go ``--jobs`` at a time (each process one torch thread); minutes are wall clock under
  that load, env steps are not affected by it.
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

from hilserl_ros.learning.config import DEFAULT_ENCODER

TARGETS = {"reach": 0.9, "pick_cube": 0.8}
TARGET_RATIO = 1.25


def plan(opts) -> list[dict]:
    runs = []
    cells = [opts.first_cell + i for i in range(opts.cells)]
    for task in opts.tasks:
        for encoder in opts.encoders:
            if not opts.skip_shipped:
                runs += [dict(task=task, encoder=encoder, seed=seed, cell=None) for seed in opts.seeds]
            runs += [dict(task=task, encoder=encoder, seed=opts.seeds[i % len(opts.seeds)], cell=cells[i % len(cells)])
                     for i in range(max(len(cells), len(opts.seeds)))] if cells else []
    return runs


def command(run: dict, opts, result: str) -> list[str]:
    minutes = opts.reach_minutes if run["task"] == "reach" else opts.pick_minutes
    cmd = [sys.executable, "-m", "hilserl_ros.sim.train_env", "--task", run["task"], "--seed", str(run["seed"]),
           "--observation", "pixels", "--encoder", run["encoder"], "--minutes", str(minutes),
           "--max-steps", str(opts.max_steps), "--target", str(TARGETS[run["task"]]), "--result-json", result]
    if run["task"] == "pick_cube":
        cmd += ["--demos", str(opts.pick_demos)]
    if run["cell"] is not None:
        cmd += ["--cell", str(run["cell"])]
    return cmd


def summarise(runs: list[dict], tasks, encoders) -> dict:
    out = {}
    for task in tasks:
        for encoder in encoders:
            mine = [r for r in runs if r["task"] == task and r["encoder"] == encoder and "env_steps" in r]
            shipped = [r for r in mine if r["cell"] is None]
            unseen = [r for r in mine if r["cell"] is not None]
            if not unseen:
                continue
            if not shipped:
                out[f"{task} {encoder}"] = {"unseen_env_steps": [r["env_steps"] for r in unseen],
                                            "unseen_cells": [r["cell"] for r in unseen],
                                            "unseen_minutes": [round(r["minutes"], 2) for r in unseen],
                                            "median_unseen": statistics.median(r["env_steps"] for r in unseen),
                                            "reached": f"{sum(r['reached'] for r in mine)}/{len(mine)}"}
                continue
            median_shipped = statistics.median(r["env_steps"] for r in shipped)
            median_unseen = statistics.median(r["env_steps"] for r in unseen)
            censored = sum(not r["reached"] for r in mine)
            out[f"{task} {encoder}"] = {
                "shipped_env_steps": [r["env_steps"] for r in shipped],
                "unseen_env_steps": [r["env_steps"] for r in unseen],
                "unseen_cells": [r["cell"] for r in unseen],
                "shipped_minutes": [round(r["minutes"], 2) for r in shipped],
                "unseen_minutes": [round(r["minutes"], 2) for r in unseen],
                "median_shipped": median_shipped, "median_unseen": median_unseen,
                "ratio": round(median_unseen / median_shipped, 3),
                "reached": f"{sum(r['reached'] for r in mine)}/{len(mine)}",
                "not_reached_runs": censored,  # counted with the steps they took: the ratio is a bound
            }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observation", choices=("pixels",), default="pixels")
    parser.add_argument("--cells", type=int, default=3, help="unseen cells (seeded visual variations)")
    parser.add_argument("--first-cell", type=int, default=1000, help="seed of the first unseen cell")
    parser.add_argument("--tasks", nargs="+", choices=tuple(TARGETS), default=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--encoders", nargs="+", default=[DEFAULT_ENCODER, "so101"],
                        help="the first is the one the target is checked on (the default of config/learner.yaml)")
    parser.add_argument("--skip-shipped", action="store_true",
                        help="unseen cells only (the shipped cell's runs come from another results file)")
    parser.add_argument("--reach-minutes", type=float, default=20.0)
    parser.add_argument("--pick-minutes", type=float, default=15.0)
    parser.add_argument("--max-steps", type=int, default=20_000)
    parser.add_argument("--pick-demos", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--results", default="learning_cells")
    opts = parser.parse_args(argv)
    from tqdm import tqdm

    workdir = tempfile.mkdtemp(prefix="bench-cells-")
    print(f"[bench-cells] logs and results of each run in {workdir}")
    todo = plan(opts)
    for i, run in enumerate(todo):
        run["name"] = f"{run['task']}-{run['encoder'].replace(':', '_').replace('/', '_')}-cell{run['cell']}-s{run['seed']}"
    done: list[dict] = []
    running: list[tuple[subprocess.Popen, dict, float, object]] = []
    bar = tqdm(total=len(todo), desc="runs", unit="run")

    def header(complete: bool) -> dict:
        from hilserl_ros.sim.cells import sample_cell
        cells = sorted({r["cell"] for r in done if r["cell"] is not None})
        return {"date": time.strftime("%Y-%m-%d %H:%M"), "complete": complete,
                "command": "make bench-learning ARGS=\"" + " ".join(["--observation pixels", f"--cells {opts.cells}",
                           "--encoders", *opts.encoders, "--tasks", *opts.tasks, "--seeds",
                           *map(str, opts.seeds), "--jobs", str(opts.jobs)]) + "\"",
                "jobs": opts.jobs, "target_ratio": TARGET_RATIO, "runs": done,
                "summary": summarise(done, opts.tasks, opts.encoders),
                "cells": {str(c): sample_cell(c).to_dict() for c in cells},
                "versions": versions("torch", "mujoco")}

    queue = list(todo)
    while queue or running:
        while queue and len(running) < opts.jobs:
            run = queue.pop(0)
            result = os.path.join(workdir, run["name"] + ".json")
            log = open(os.path.join(workdir, run["name"] + ".log"), "w")
            env = dict(os.environ, OMP_NUM_THREADS="1")
            running.append((subprocess.Popen(command(run, opts, result), stdout=log, stderr=subprocess.STDOUT, env=env),
                            run, time.monotonic(), log))
        time.sleep(2.0)
        for item in list(running):
            proc, run, start, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            result = os.path.join(workdir, run["name"] + ".json")
            record = dict(run)
            if os.path.exists(result):
                with open(result) as fh:
                    got = json.load(fh)
                record.update({k: got[k] for k in ("reached", "minutes", "episodes", "env_steps", "updates",
                                                   "final_policy_success", "final_intervention_rate", "demo_successes")})
            else:
                record["error"] = f"exited {proc.returncode} without a result; see {run['name']}.log"
            record["process_minutes"] = round((time.monotonic() - start) / 60, 2)
            done.append(record)
            bar.update(1)
            tqdm.write(f"[bench-cells] {run['task']} {run['encoder']} cell {run['cell']} seed {run['seed']}: "
                       + (f"reached={record['reached']} at {record['env_steps']} env steps, {record['minutes']:.1f} min"
                          if "env_steps" in record else record["error"]))
            write(opts.results, header(False))  # a bench stopped half-way keeps what it measured
    bar.close()
    out = header(True)
    path = write(opts.results, out)
    ok = True
    for key, line in out["summary"].items():
        if "ratio" not in line:
            print(f"[bench-cells] {key}: unseen cells {line['unseen_cells']} {line['unseen_env_steps']} env steps, "
                  f"reached {line['reached']}")
            continue
        print(f"[bench-cells] {key}: env steps shipped {line['shipped_env_steps']} (median {line['median_shipped']:g}), "
              f"unseen cells {line['unseen_cells']} {line['unseen_env_steps']} (median {line['median_unseen']:g}): "
              f"{line['ratio']:.2f}x; reached {line['reached']}")
    default = opts.encoders[0]
    for task in ([] if opts.skip_shipped else opts.tasks):
        line = out["summary"].get(f"{task} {default}")
        met = bool(line) and line["ratio"] <= TARGET_RATIO and line["not_reached_runs"] == 0
        ok &= met
        print(f"[bench-cells] target {task} {default}: unseen/shipped <= {TARGET_RATIO}: {'met' if met else 'NOT met'}")
    print(f"[bench-cells] wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
