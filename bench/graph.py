"""Figures of the training graph over ROS 2 (simulation, this machine).

    make bench-graph        (python bench/graph.py [--seconds 60] [--no-train])

- observation-to-command latency at 10 Hz: for each EE command, the time since the newest
  /joint_states sample arrived here (its stamp is simulated time in simulation): the joint
  state -> IK pose -> actor -> command path, DDS hops included; p50 and p99;
- weight broadcast latency: PolicyWeights stamp (learner) to arrival, for the policy of
  the running graph (state or pixels), and for the default image policy (two 128x128 cameras;
  the frozen backbone is not sent, only the heads and networks training changes) sent the
  same way; with cameras, the actor's own median time per policy.act (both cameras encoded
  on its CPU) and the bytes of each weights push it receives;
- transitions per second actor -> learner, which is also the simulated environment steps per
  second through the full graph (one transition per step), at time_scale 1 and 3;
- with cameras (``observation:=pixels`` on pick_cube: front and wrist at 128x128, rendered by
  /sim_camera in its own process): the same figures, plus each camera's render cost while the
  whole graph runs (/sim_camera's diagnostics: median render time, frames/s it allows), the
  frames/s arriving on the camera topics, and the effective time scale (simulated seconds per
  wall second = env steps/s / 10 Hz; >= 1 means image training runs at least in real time);
- wall-clock time `make train` takes to reach 90% policy success on reach (skip: --no-train).
"""
from __future__ import annotations

import argparse
import array
import os
import json
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import versions, write  # noqa: E402


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


CONTROL_RATE = 10.0  # Hz, config/actor.yaml


def run_graph(seconds: float, time_scale: float, task: str = "reach", observation: str = "state") -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState

    from hilserl_ros import topics
    from hilserl_ros.graph import TRAIN_GRAPH
    from hilserl_ros.launcher import Launcher
    from hilserl_ros.msg import EndEffectorCommand, PolicyWeights, Transition
    from hilserl_ros.ros import qos

    workdir = tempfile.mkdtemp(prefix="bench-graph-")
    log = open(os.path.join(workdir, "graph.log"), "w", buffering=1)
    launcher = Launcher(TRAIN_GRAPH, {"time_scale": str(time_scale), "foxglove": "false", "task": task,
                                      "observation": observation,
                                      "checkpoint_dir": os.path.join(workdir, "checkpoints"),
                                      "spool_dir": os.path.join(workdir, "spool")}, out=log)
    runner = threading.Thread(target=launcher.run, kwargs={"install_signal_handlers": False}, daemon=True)
    runner.start()
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_graph", context=context)
    latest_joint = [None]
    command_ages, weight_latency, transitions = [], [], []
    camera_topics = {"front": topics.CAMERA_IMAGE, "wrist": topics.WRIST_CAMERA_IMAGE} if observation != "state" else {}
    frames = {name: [] for name in camera_topics}
    render = {}  # camera -> latest /sim_camera diagnostic values
    acting = {}  # the actor's latest policy diagnostic values

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith("sim_camera: "):
                render[status.name.split(": ", 1)[1]] = {v.key: v.value for v in status.values}
            elif status.name == "actor: policy":
                acting.update({v.key: v.value for v in status.values})

    def on_joints(msg):
        latest_joint[0] = time.time()  # arrival: in simulation the stamps are simulated time

    def on_command(msg):
        if latest_joint[0] is not None:
            command_ages.append(time.time() - latest_joint[0])

    def on_weights(msg):
        weight_latency.append(time.time() - stamp_seconds(msg.header.stamp))

    node.create_subscription(JointState, topics.JOINT_STATES, on_joints, qos.SENSOR)
    node.create_subscription(EndEffectorCommand, topics.EE_COMMAND, on_command, qos.EVENTS)
    node.create_subscription(PolicyWeights, topics.POLICY_WEIGHTS, on_weights, qos.LATCHED)
    node.create_subscription(Transition, topics.TRANSITIONS, lambda m: transitions.append(time.monotonic()),
                             qos.TRANSITIONS)
    node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diagnostics, qos.EVENTS)
    for name, topic in camera_topics.items():
        node.create_subscription(Image, topic, lambda m, n=name: frames[n].append(time.monotonic()), qos.SENSOR)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 120
        while len(transitions) < 20 and time.monotonic() < deadline:  # graph up and stepping
            executor.spin_once(timeout_sec=0.1)
        command_ages.clear()
        weight_latency.clear()
        render.clear()
        start, n0 = time.monotonic(), len(transitions)
        f0 = {name: len(f) for name, f in frames.items()}
        while time.monotonic() - start < seconds:
            executor.spin_once(timeout_sec=0.05)
        wall = time.monotonic() - start
        steps = (len(transitions) - n0) / wall
        received = {name: (len(f) - f0[name]) / wall for name, f in frames.items()}
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        launcher.request_stop("benchmark done")
        runner.join(timeout=60)
    ages = np.array(command_ages) * 1e3
    lat = np.array(weight_latency) * 1e3
    cameras = {name: {"frames_per_s_received": received[name],
                      "render_ms_median": float(render[name]["render_ms_median"]) if render.get(name) else None,
                      "frames_per_s_possible": float(render[name]["frames_per_s_possible"]) if render.get(name)
                      else None} for name in camera_topics}
    return {"task": task, "observation": observation, "time_scale": time_scale, "env_steps_per_s": steps,
            "transitions_per_s": steps, "effective_time_scale": steps / CONTROL_RATE, "cameras": cameras,
            # the actor's own timing of policy.act (cameras encoded + heads + actor network), median
            # of its last 500 steps; and the bytes of the last weights push it received
            "actor_act_ms": {"median": float(acting["act_ms_median"]), "p95": float(acting["act_ms_p95"]),
                             "steps": int(acting["steps_timed"])} if acting.get("act_ms_median") else None,
            "weights_push_bytes": int(acting["weights_bytes"]) if acting.get("weights_bytes") else None,
            "obs_to_command_ms": {"p50": float(np.median(ages)), "p99": float(np.percentile(ages, 99)),
                                  "n": int(ages.size)} if ages.size else None,
            "weights_latency_ms": {"p50": float(np.median(lat)), "max": float(lat.max()),
                                         "n": int(lat.size)} if lat.size else None}


def image_weights_latency(repeats: int = 10) -> dict:
    """An image policy's weights (two 128x128 cameras, the default encoder) sent over DDS as the
    learner sends them."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor

    from hilserl_ros.learning.config import SACConfig
    from hilserl_ros.learning.sac import Policy, sha256
    from hilserl_ros.msg import PolicyWeights
    from hilserl_ros.ros import qos

    from hilserl_ros.learning.config import DEFAULT_ENCODER

    # the default image policy: a frozen backbone (not sent) and the heads, actor, grasp critic
    data, meta = Policy(SACConfig(obs_dim=9, action_dim=4, image_keys=("front", "wrist"),
                                  backbone=DEFAULT_ENCODER, freeze_encoder=True)).to_bytes(1)
    context = Context()
    rclpy.init(context=context)
    sender = rclpy.create_node("bench_weights_tx", context=context)
    receiver = rclpy.create_node("bench_weights_rx", context=context)
    got = []
    receiver.create_subscription(PolicyWeights, "/bench/policy_weights",
                                 lambda m: got.append(time.time() - stamp_seconds(m.header.stamp)), qos.LATCHED)
    pub = sender.create_publisher(PolicyWeights, "/bench/policy_weights", qos.LATCHED)
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(receiver)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    for i in range(repeats):
        msg = PolicyWeights(version=i, format="safetensors", metadata_json=meta, sha256=sha256(data))
        msg.data = array.array("B", data)  # as the learner sends it
        msg.header.stamp = sender.get_clock().now().to_msg()
        pub.publish(msg)
        deadline = time.monotonic() + 10
        while len(got) <= i and time.monotonic() < deadline:
            time.sleep(0.005)
    executor.shutdown()
    context.try_shutdown()
    lat = np.array(got) * 1e3
    return {"bytes": len(data), "p50_ms": float(np.median(lat)), "max_ms": float(lat.max()), "n": int(lat.size)}


def time_to_90(minutes: float = 15.0) -> dict:
    run_dir = tempfile.mkdtemp(prefix="bench-train-")
    result = os.path.join(run_dir, "result.json")
    subprocess.run([sys.executable, "-m", "hilserl_ros.train", "--minutes", str(minutes), "--run-dir", run_dir,
                    "--result-json", result], capture_output=True, text=True)
    if not os.path.exists(result):
        return {"reached": False, "minutes": None}
    with open(result) as fh:
        record = json.load(fh)
    return {"reached": record["reached"], "episodes": record["episodes"], "minutes": round(record["minutes"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="measurement window per time scale")
    parser.add_argument("--no-train", action="store_true", help="skip the time-to-90%% training run")
    parser.add_argument("--no-pixels", action="store_true", help="skip the camera (observation:=pixels) runs")
    opts = parser.parse_args()
    graphs = []
    runs = [("reach", "state", 1.0), ("reach", "state", 3.0)]
    if not opts.no_pixels:
        runs += [("pick_cube", "pixels", 1.0), ("pick_cube", "pixels", 3.0)]
    for task, observation, scale in runs:
        g = run_graph(opts.seconds, scale, task, observation)
        graphs.append(g)
        lat = g["obs_to_command_ms"] or {"p50": float("nan"), "p99": float("nan")}
        w = g["weights_latency_ms"] or {"p50": float("nan"), "max": float("nan")}
        print(f"[bench] {task} {observation}, time_scale {scale:g}: {g['env_steps_per_s']:.1f} env steps/s = "
              f"transitions/s through the graph (effective time scale {g['effective_time_scale']:.2f}); "
              f"obs->command p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; weights p50 {w['p50']:.1f} ms",
              flush=True)
        if g["actor_act_ms"]:
            print(f"[bench]   actor: policy.act {g['actor_act_ms']['median']:.1f} ms median, p95 "
                  f"{g['actor_act_ms']['p95']:.1f} ms ({g['actor_act_ms']['steps']} steps, cameras encoded on its "
                  f"CPU); weights push {g['weights_push_bytes'] or 0:,} bytes", flush=True)
        for name, c in g["cameras"].items():
            possible = c["frames_per_s_possible"]
            print(f"[bench]   camera {name}: {c['frames_per_s_received']:.1f} frames/s on its topic; render "
                  + (f"{c['render_ms_median']:.1f} ms median = {possible:.0f} frames/s possible" if possible
                     else "cost not reported") + " with the graph running", flush=True)
    image = image_weights_latency()
    print(f"[bench] image policy weights ({image['bytes'] / 1e6:.1f} MB): p50 {image['p50_ms']:.1f} ms, "
          f"max {image['max_ms']:.1f} ms", flush=True)
    train = None if opts.no_train else time_to_90()
    if train:
        print(f"[bench] make train: {'reached' if train['reached'] else 'did NOT reach'} 90% policy success "
              f"in {train['minutes']} min", flush=True)
    path = write("graph", {"versions": versions("ros-rclpy", "torch", "mujoco"), "graph": graphs,
                           "image_weights": image, "time_to_90_percent": train})
    print(f"[bench] wrote {path}")
    first = graphs[0]["obs_to_command_ms"] or {"p50": float("nan"), "p99": float("nan")}
    pixels = [g for g in graphs if g["observation"] != "state"]
    slowest = min((c["frames_per_s_possible"] or 0.0 for g in pixels for c in g["cameras"].values()), default=None)
    print(f"[bench] obs->command p50 {first['p50']:.1f} ms / p99 {first['p99']:.1f} ms at 10 Hz; "
          f"{graphs[1]['env_steps_per_s']:.0f} env steps/s at time_scale 3"
          + (f"; pixels (2 cameras): {pixels[-1]['env_steps_per_s']:.0f} env steps/s at time_scale 3 (effective "
             f"{pixels[-1]['effective_time_scale']:.2f}), slowest camera {slowest:.0f} frames/s possible"
             if pixels else "")
          + (f"; 90% reach success after {train['minutes']} min" if train and train["reached"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
