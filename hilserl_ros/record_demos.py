"""Record demonstration episodes as a rosbag2 (MCAP) bag (``make record-demos``).

    python -m hilserl_ros.record_demos --episodes 20 [--operator scripted|joystick] [--out runs/demos]
                                       [launch args, e.g. task:=reach use_sim:=false port:=/dev/ttyACM0]

Runs the graph without a learner: the operator drives every step (the scripted human in
demonstration mode, or a person with the gamepad: hold the deadman and steer; while nobody
drives the arm holds), the actor turns each step into a Transition, and the recorder keeps
the whole run (transitions, joint states, task state, camera, commands). Stops after
``--episodes`` episodes. Preload the bag into a learner with ``demo_bags:=<bag>`` (launch
argument) or ``-p demo_bags:=<bag>``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time

from hilserl_ros import topics
from hilserl_ros.graph import TRAIN_GRAPH, Graph, NodeSpec
from hilserl_ros.launcher import parse_overrides
from hilserl_ros.msg import EpisodeStats
from hilserl_ros.recording.bag import default_bag_name, topic_counts
from hilserl_ros.ros import qos
from hilserl_ros.session import GraphSession


def demonstration_graph(graph: Graph, bag_name: str) -> Graph:
    """The training graph minus the learner; the actor steps without weights, the scripted
    operator drives every step, the recorder writes to ``bag_name``."""
    def adapt(spec: NodeSpec) -> NodeSpec:
        extra = {"actor": {"act_without_weights": True, "wait_for_operator": True}, "scripted_human": {"mode": "demonstrate"},
                 "recorder": {"bag_name": bag_name}}.get(spec.name)
        return dataclasses.replace(spec, parameters={**spec.parameters, **extra}) if extra else spec

    return Graph(graph.arguments, tuple(adapt(spec) for spec in graph.nodes if spec.name != "learner"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arguments", nargs="*", help="launch arguments, name:=value")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--operator", choices=("scripted", "joystick"), default=None,
                        help="who demonstrates (default: scripted in simulation, joystick on the real arm)")
    parser.add_argument("--out", default=os.path.join("runs", "demos"), help="directory that receives the bag")
    parser.add_argument("--name", default=None, help="bag directory name (default demos_<date>_<time>)")
    parser.add_argument("--minutes", type=float, default=30.0, help="give up after this long")
    opts = parser.parse_args(argv)
    if opts.episodes < 1:
        parser.error("--episodes must be at least 1")
    from tqdm import tqdm

    name = opts.name or default_bag_name("demos")
    bag = os.path.join(opts.out, name)
    if os.path.exists(bag):
        parser.error(f"{bag} exists; a bag is never overwritten")
    overrides = {"time_scale": "3.0", "foxglove": "false"}
    overrides.update(parse_overrides(opts.arguments))
    # no learner acknowledges these transitions: the actor's spool is a scratch directory here
    spool = tempfile.mkdtemp(prefix="hilserl-demo-spool-")
    overrides.update({"record": "true", "bag_dir": opts.out, "spool_dir": spool})
    if opts.operator:
        overrides["operator"] = opts.operator
    os.makedirs(opts.out, exist_ok=True)
    log_path = os.path.join(opts.out, f"{name}.log")
    with open(log_path, "a", buffering=1) as log:
        try:
            session = GraphSession(demonstration_graph(TRAIN_GRAPH, name), overrides, out=log,
                                   node_name="demo_recorder")
        except ValueError as err:
            parser.error(str(err))
        episodes: list[EpisodeStats] = []
        lock = threading.Lock()

        def on_episode(msg: EpisodeStats) -> None:
            with lock:
                episodes.append(msg)
            tqdm.write(f"[DEMO] Episode {msg.episode} done | steps={msg.steps} | reward={msg.reward:.2f} | "
                       f"{msg.end_reason} | operator drove {100 * msg.intervention_rate:.0f}%")

        session.node.create_subscription(EpisodeStats, topics.EPISODE_STATS, on_episode, qos.EVENTS)
        print(f"[demos] recording {opts.episodes} episodes to {bag} (node output in {log_path})")
        session.start()
        bar = tqdm(total=opts.episodes, unit="episode")
        deadline = time.monotonic() + opts.minutes * 60
        try:
            while session.running and time.monotonic() < deadline:
                with lock:
                    done = len(episodes)
                if done > bar.n:
                    bar.update(min(done, opts.episodes) - bar.n)
                if done >= opts.episodes:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            tqdm.write("[demos] interrupted: keeping what was recorded")
        bar.close()
        session.stop("demonstrations recorded")
        shutil.rmtree(spool, ignore_errors=True)
    if not os.path.isfile(os.path.join(bag, "metadata.yaml")):
        print(f"[demos] no bag was closed at {bag}; see {log_path}", file=sys.stderr)
        return 1
    counts = topic_counts(bag)
    transitions = counts.get(topics.TRANSITIONS, ("", 0))[1]
    success = sum(e.success for e in episodes)
    steps = sum(e.steps for e in episodes)
    print(f"[demos] {len(episodes)} episodes ({success} successful), {steps} steps, {transitions} transitions "
          f"in {bag}")
    print(f"[demos] train with them: make train ARGS='demo_bags:={bag}'")
    return 0 if len(episodes) >= opts.episodes and transitions > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
