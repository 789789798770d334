"""The main job: train the simulated SO-101 with HIL-SERL and show progress (``make train``).

    python -m hilserl_ros.train [--minutes 15] [--target 0.9] [--window 20] [--demos 20] [launch args, e.g. task:=reach]

Starts the training graph (hilserl_ros.graph: sim, driver, IK, scripted human, actor, learner)
through the project launcher, with every node's output in <run>/graph.log and the episode lines
on the terminal above a progress bar (episodes, success rate over the last ``window`` episodes,
alpha, intervention rate). Stops when that success rate reaches ``target`` or after
``minutes``; asks the learner for a checkpoint, writes <run>/history.csv and <run>/training.png,
and stops the graph. ``--demos N`` first records N demonstrations by the scripted operator
through the same graph (hilserl_ros.record_demos, into <run>/demos) and preloads them
(``demo_bags:=``); the training minutes count from the launch after the recording.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from hilserl_ros import topics
from hilserl_ros.graph import TRAIN_GRAPH
from hilserl_ros.launcher import Launcher, parse_overrides
from hilserl_ros.msg import EpisodeStats, LearnerStats
from hilserl_ros.ros import qos, service
from hilserl_ros.srv import SaveCheckpoint

ECHO = ("[ACTOR] Episode", "DIED", "alpha collapse", "resumed from", "Traceback", "Error", "Foxglove bridge",
        "[runner]")


class TeeLog:
    """File-like: every line to the graph log; the lines a person wants also to the terminal."""

    def __init__(self, path: str, echo):
        self.file = open(path, "a", buffering=1)
        self.echo = echo

    def write(self, text: str) -> int:
        self.file.write(text)
        for line in text.splitlines():
            if any(key in line for key in ECHO):
                self.echo(line)
        return len(text)

    def flush(self) -> None:
        self.file.flush()


class Monitor:
    def __init__(self, context: Context, window: int):
        self.node = rclpy.create_node("training_monitor", context=context)
        self.episodes: list[EpisodeStats] = []
        self.stats: LearnerStats | None = None
        self.stat_rows: list[dict] = []
        self.switches: list[dict] = []  # parameters set mid-run (--set-at)
        self.collapse_flagged: dict | None = None  # when the learner's watchdog first flagged alpha collapse
        self.window = window
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.update_advanced_at: float | None = None  # monotonic time the learner's update_step last grew
        self.received_advanced_at: float | None = None  # ... its transitions_received
        self.node.create_subscription(EpisodeStats, topics.EPISODE_STATS, self._on_episode, qos.EVENTS)
        self.node.create_subscription(LearnerStats, topics.LEARNER_STATS, self._on_stats, qos.EVENTS)
        self.save = self.node.create_client(SaveCheckpoint, topics.SAVE_CHECKPOINT)

    def _on_episode(self, msg: EpisodeStats) -> None:
        with self.lock:
            self.episodes.append(msg)

    def _on_stats(self, msg: LearnerStats) -> None:
        now = time.monotonic()
        with self.lock:
            if self.stats is None or msg.update_step > self.stats.update_step:
                self.update_advanced_at = now
            if self.stats is None or msg.transitions_received > self.stats.transitions_received:
                self.received_advanced_at = now
            self.stats = msg
            if msg.alpha_collapse and self.collapse_flagged is None:
                self.collapse_flagged = {"seconds": round(now - self.started, 1), "update": msg.update_step,
                                         "env_steps": self.episodes[-1].total_steps if self.episodes else 0,
                                         "warning": msg.warning}
            self.stat_rows.append({"update": msg.update_step, "seconds": round(now - self.started, 2),
                                   "env_steps": self.episodes[-1].total_steps if self.episodes else 0,
                                   "alpha": msg.alpha, "entropy": msg.entropy,
                                   "target_entropy": msg.target_entropy, "critic_loss": msg.critic_loss,
                                   "action_abs_mean": msg.action_abs_mean, "policy_mean_abs": msg.policy_mean_abs,
                                   "q_mean": msg.q_mean,
                                   "alpha_collapse": int(msg.alpha_collapse), "episodes": len(self.episodes)})

    @staticmethod
    def autonomous(e: EpisodeStats) -> bool:
        """Success by the policy alone: the scripted human never had to take over."""
        return bool(e.success) and e.intervention_steps == 0

    def success_rate(self) -> float | None:
        with self.lock:
            recent = self.episodes[-self.window:]
        if len(recent) < self.window:
            return None
        return sum(self.autonomous(e) for e in recent) / len(recent)

    def summary(self) -> dict:
        with self.lock:
            recent = self.episodes[-self.window:]
            stats = self.stats
        return {
            "episodes": len(self.episodes),
            "success": (sum(e.success for e in recent) / len(recent)) if recent else 0.0,
            "autonomous": (sum(self.autonomous(e) for e in recent) / len(recent)) if recent else 0.0,
            "intervention": (sum(e.intervention_rate for e in recent) / len(recent)) if recent else 0.0,
            "alpha": stats.alpha if stats else float("nan"),
            "env_steps": self.episodes[-1].total_steps if self.episodes else 0,
            "updates": stats.update_step if stats else 0,
        }


STALL_SECONDS = 30.0  # no update for this long while transitions kept arriving: training has stopped
HIGH_INTERVENTION = 0.3  # share of steps the operator drove above which "still high" is the reason


def why_not(monitor: Monitor, launcher: Launcher, summary: dict, ended_at: float) -> str:
    """What most likely kept a run from its target, from what is known rather than guessed:
    a node that died, a learner whose training stopped, one that never started, else alpha."""
    trouble = launcher.trouble()
    if trouble:
        return "node trouble: " + " | ".join(trouble)
    with monitor.lock:
        stats, updated, received = monitor.stats, monitor.update_advanced_at, monitor.received_advanced_at
    if stats is None:
        return "the learner published no statistics at all: is /learner running? (see graph.log)"
    if stats.update_step == 0:
        return (f"the learner had not started training ({stats.transitions_received} transitions received; it "
                f"starts at its training_starts parameter)")
    if updated is not None and received is not None and received - updated > STALL_SECONDS:
        return (f"the learner's training stopped at update {stats.update_step}, {ended_at - updated:.0f} s before "
                f"the end, while transitions kept arriving (see graph.log)")
    if ended_at - (updated or ended_at) > STALL_SECONDS:
        return (f"the learner's updates stopped at update {stats.update_step}, {ended_at - updated:.0f} s before "
                f"the end (see graph.log)")
    if stats.alpha_collapse:  # only when the learner's watchdog says so, with its own words
        return stats.warning or f"the learner's watchdog flagged an alpha collapse (alpha {stats.alpha:.4f})"
    if summary["intervention"] >= HIGH_INTERVENTION:
        return (f"interventions still high ({summary['intervention']:.0%} of the last episodes' steps): the operator "
                f"still does the work; give it more time")
    return (f"the target was not reached in the time given (alpha {summary['alpha']:.3f}, intervention "
            f"{summary['intervention']:.0%}); give it more time or look at the plots")


def parse_switch(minutes: str, assignment: str) -> tuple[float, str, float]:
    """``--set-at 2.5 target_entropy=-2.0`` -> (150.0 s, "target_entropy", -2.0)."""
    name, _, value = assignment.partition("=")
    try:
        return float(minutes) * 60.0, name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set-at {minutes} {assignment}: expected MINUTES NAME=NUMBER") from None


def set_learner_parameter(node, name: str, value: float, timeout: float = 60.0) -> None:
    """A SetParameters call on /learner: the path `ros2 param set /learner ...` takes."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = node.create_client(SetParameters, "/learner/set_parameters")
    value_msg = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
    try:
        reply = service.call(client, SetParameters.Request(parameters=[Parameter(name=name, value=value_msg)]),
                             timeout=timeout)
    except TimeoutError as err:
        raise RuntimeError(f"/learner: {name}={value} not set: {err}") from None
    result = reply.results[0]
    if not result.successful:
        raise RuntimeError(f"/learner refused {name}={value}: {result.reason}")
    print(f"[train] /learner {name} set to {value}")


def write_learner_stats(run_dir: str, monitor: Monitor) -> str:
    path = os.path.join(run_dir, "learner_stats.csv")
    rows = monitor.stat_rows
    with open(path, "w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def write_history(run_dir: str, monitor: Monitor) -> str:
    path = os.path.join(run_dir, "history.csv")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["episode", "total_steps", "steps", "reward", "success", "intervention_rate",
                         "end_reason", "policy_version"])
        for e in monitor.episodes:
            writer.writerow([e.episode, e.total_steps, e.steps, f"{e.reward:.4f}", int(e.success),
                             f"{e.intervention_rate:.4f}", e.end_reason, e.policy_version])
    return path


def plot(run_dir: str, monitor: Monitor, window: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    episodes = monitor.episodes
    n = np.arange(1, len(episodes) + 1)
    success = np.array([e.success for e in episodes], float)
    alone = np.array([Monitor.autonomous(e) for e in episodes], float)
    rolling = np.array([success[max(0, i - window + 1):i + 1].mean() for i in range(len(success))])
    rolling_alone = np.array([alone[max(0, i - window + 1):i + 1].mean() for i in range(len(alone))])
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    axes[0, 0].plot(n, rolling_alone, color="tab:green", label="policy alone (no intervention)")
    axes[0, 0].plot(n, rolling, color="tab:green", alpha=0.35, label="with interventions")
    axes[0, 0].set(title=f"success rate (last {window} episodes)", xlabel="episode", ylim=(-0.02, 1.02))
    axes[0, 0].legend(loc="lower right")
    axes[0, 1].plot(n, [e.reward for e in episodes], ".", alpha=0.6)
    axes[0, 1].set(title="episode reward", xlabel="episode")
    axes[1, 0].plot(n, [e.intervention_rate for e in episodes], ".", color="tab:orange", alpha=0.6)
    axes[1, 0].set(title="intervention rate", xlabel="episode", ylim=(-0.02, 1.02))
    rows = monitor.stat_rows
    if rows:
        updates = [r["update"] for r in rows]
        ax = axes[1, 1]
        ax.plot(updates, [r["alpha"] for r in rows], label="alpha", color="tab:red")
        ax.set(title="temperature and entropy", xlabel="learner update", ylabel="alpha", yscale="log")
        twin = ax.twinx()
        twin.plot(updates, [r["entropy"] for r in rows], label="entropy", color="tab:blue", alpha=0.7)
        twin.plot(updates, [r["target_entropy"] for r in rows], "--", label="target entropy", color="tab:blue")
        twin.set_ylabel("nats")
        lines = ax.get_lines() + twin.get_lines()
        twin.legend(lines, [line.get_label() for line in lines], loc="upper right")
    fig.tight_layout()
    path = os.path.join(run_dir, "training.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_result(path: str, monitor: Monitor, s: dict, reached: bool, minutes: float, overrides: dict,
                 opts, demo_minutes: float = 0.0, cpu_seconds: dict | None = None) -> None:
    """The run as one record of bench/results/learning.json (``cpu_seconds``: per node, where the
    machine's time went)."""
    import json

    record = {"task": overrides.get("task", "reach"), "observation": overrides.get("observation", "state"),
              "where": "graph",
              "seed": int(overrides.get("seed", 0)), "reached": reached, "minutes": round(minutes, 3),
              "episodes": s["episodes"], "env_steps": s["env_steps"], "updates": s["updates"],
              "final_policy_success": s["autonomous"], "final_intervention_rate": s["intervention"],
              "final_alpha": s["alpha"], "target": opts.target, "window": opts.window, "budget_minutes": opts.minutes,
              "demos": opts.demos, "demo_minutes": round(demo_minutes, 3), "cpu_seconds": cpu_seconds or {},
              "full_time": bool(opts.full_time), "switches": monitor.switches,
              "collapse_flagged": monitor.collapse_flagged}
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arguments", nargs="*", help="launch arguments, name:=value")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--target", type=float, default=0.9, help="success rate that ends training")
    parser.add_argument("--window", type=int, default=20, help="episodes the success rate is taken over")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--target-entropy", type=float, default=None,
                        help="set /learner target_entropy at start (as `ros2 param set` would)")
    parser.add_argument("--result-json", default=None,
                        help="write the run's outcome here (make bench-learning reads it)")
    parser.add_argument("--full-time", action="store_true",
                        help="run the whole --minutes (no stop at --target): for experiments compared over equal time")
    parser.add_argument("--set-at", nargs=2, action="append", default=[], metavar=("MINUTES", "NAME=VALUE"),
                        help="set a /learner parameter mid-run (as `ros2 param set` does), e.g. --set-at 3 "
                             "target_entropy=-2.0; repeatable")
    parser.add_argument("--demos", type=int, default=0,
                        help="record this many scripted demonstrations first and preload them (pick_cube: 20)")
    opts = parser.parse_args(argv)
    try:
        switches = sorted(parse_switch(*pair) for pair in opts.set_at)
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    from tqdm import tqdm

    run_dir = opts.run_dir or os.path.join("runs", time.strftime("train-%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    overrides = {"time_scale": "3.0", "checkpoint_dir": os.path.join(run_dir, "checkpoints"),
                 "spool_dir": os.path.join(run_dir, "spool"),
                 "bag_dir": run_dir}  # with record:=true the run's bag lands next to its plots
    overrides.update(parse_overrides(opts.arguments))
    demo_minutes = 0.0
    if opts.demos > 0:
        from hilserl_ros import record_demos

        began = time.monotonic()
        given = parse_overrides(opts.arguments)
        given.pop("demo_bags", None)
        given["seed"] = str(int(given.get("seed", 0)) + 1000)  # other cube placements than the training's
        passed = [f"{k}:={v}" for k, v in given.items()]
        if record_demos.main(["--episodes", str(opts.demos), "--out", run_dir, "--name", "demos", *passed]) != 0:
            print("[train] recording the demonstrations failed; see the log above", file=sys.stderr)
            return 2
        demo_minutes = (time.monotonic() - began) / 60
        overrides["demo_bags"] = os.path.join(run_dir, "demos")
        print(f"[train] {opts.demos} demonstrations recorded in {demo_minutes:.1f} min; preloaded from "
              f"{overrides['demo_bags']}")
    log = TeeLog(os.path.join(run_dir, "graph.log"), lambda line: tqdm.write(line.strip()))
    try:
        launcher = Launcher(TRAIN_GRAPH, overrides, out=log)
    except ValueError as err:  # a launch argument with a value it cannot take: say which, no traceback
        print(f"[train] {err}", file=sys.stderr)
        return 2
    print(f"[train] run directory {run_dir}; node output in {run_dir}/graph.log")
    print(f"[train] goal: success rate >= {opts.target:.0%} over {opts.window} episodes, at most {opts.minutes:g} min")
    runner = threading.Thread(target=launcher.run, kwargs={"install_signal_handlers": False}, daemon=True)
    runner.start()

    context = Context()
    rclpy.init(args=[], context=context)  # not sys.argv: rcl would read task:=... as a (deprecated) remap rule
    monitor = Monitor(context, opts.window)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(monitor.node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    if opts.target_entropy is not None:
        set_learner_parameter(monitor.node, "target_entropy", opts.target_entropy)
    start = time.monotonic()
    reached = False
    bar = tqdm(total=int(opts.minutes * 60), unit="s", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s {postfix}")
    try:
        while runner.is_alive():
            elapsed = time.monotonic() - start
            s = monitor.summary()
            bar.n = min(int(elapsed), bar.total)
            bar.set_postfix_str(f"episodes={s['episodes']} policy success@{opts.window}={s['autonomous']:.0%} "
                                f"(with help {s['success']:.0%}) intervention={s['intervention']:.0%} "
                                f"alpha={s['alpha']:.3f} updates={s['updates']}")
            while switches and elapsed >= switches[0][0]:
                at, name, value = switches.pop(0)
                summary = monitor.summary()
                try:
                    set_learner_parameter(monitor.node, name, value)
                    monitor.switches.append({"seconds": round(elapsed, 1), "env_steps": summary["env_steps"],
                                             "update": summary["updates"], "name": name, "value": value})
                    tqdm.write(f"[train] at {elapsed / 60:.1f} min ({summary['env_steps']} env steps): /learner "
                               f"{name} set to {value}")
                except RuntimeError as err:
                    tqdm.write(f"[train] at {elapsed / 60:.1f} min: {err}")
            rate = monitor.success_rate()
            if rate is not None and rate >= opts.target and not opts.full_time:
                reached = True
                break
            if elapsed > opts.minutes * 60:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        tqdm.write("[train] interrupted")
    bar.close()
    elapsed = time.monotonic() - start
    s = monitor.summary()
    ended_at = time.monotonic()
    if monitor.save.wait_for_service(timeout_sec=5):
        future = monitor.save.call_async(SaveCheckpoint.Request())
        deadline = time.monotonic() + 60
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.1)
        if future.done() and future.result().success:
            print(f"[train] checkpoint {future.result().written_path}")
        elif future.done():
            print(f"[train] the end-of-run checkpoint FAILED: {future.result().message}")
        else:
            print("[train] the end-of-run checkpoint FAILED: /learner did not answer in 60 s")
    else:
        print("[train] no end-of-run checkpoint: /learner/save_checkpoint is not served")
    launcher.request_stop("training done")
    runner.join(timeout=60)
    history = write_history(run_dir, monitor)
    write_learner_stats(run_dir, monitor)
    png = plot(run_dir, monitor, opts.window)
    executor.shutdown()
    spinner.join(timeout=5)
    monitor.node.destroy_node()
    context.try_shutdown()
    minutes = elapsed / 60
    cpu = launcher.cpu_seconds()
    busiest = sorted(cpu.items(), key=lambda kv: -kv[1])[:4]
    print(f"[train] where the time went (CPU s per node, {os.cpu_count()} cores x {elapsed:.0f} s wall): "
          + ", ".join(f"{name} {seconds:.0f}" for name, seconds in busiest))
    if opts.result_json:
        write_result(opts.result_json, monitor, s, reached, minutes, overrides, opts, demo_minutes, cpu)
    print(f"[train] history {history}, learner statistics {run_dir}/learner_stats.csv; all plots: "
          f"make report ARGS={run_dir}")
    if reached:
        trouble = launcher.trouble()
        print(f"[train] reached {opts.target:.0%} policy success (no intervention) over {opts.window} episodes in "
              f"{minutes:.1f} min: {s['episodes']} episodes, {s['env_steps']} steps, intervention "
              f"{s['intervention']:.0%}, alpha {s['alpha']:.3f}; plot {png}"
              + (f" (node trouble on the way: {' | '.join(trouble)})" if trouble else ""))
    elif opts.full_time and not launcher.trouble():
        # asked to run the whole time (an experiment): what it reached, not a failure
        print(f"[train] ran the full {opts.minutes:g} min as asked: policy success {s['autonomous']:.0%} over the last "
              f"{opts.window} episodes (with help {s['success']:.0%}), {s['episodes']} episodes, {s['env_steps']} steps, "
              f"intervention {s['intervention']:.0%}, alpha {s['alpha']:.3f}"
              + (f", watchdog: {monitor.stats.warning}" if monitor.stats and monitor.stats.alpha_collapse else "")
              + f"; plot {png}")
        return 0
    else:
        # the one line a person reads when it did not learn: what was reached, and where to look
        print(f"[train] did NOT reach {opts.target:.0%} policy success in {minutes:.1f} min (policy success "
              f"{s['autonomous']:.0%}, with help {s['success']:.0%}, {s['episodes']} episodes): "
              f"{why_not(monitor, launcher, s, ended_at)}; plots in {png}")
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
