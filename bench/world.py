"""Figures of the SO-101 world: servo bus, IK, simulation.

    make bench-world        (python bench/world.py)

- servo sync-read rate of all six servos through the real SDK against the emulated bus with
  1 Mbps wire timing (target >= 200 Hz; one read is 98 bytes on the wire, so 1 Mbps allows
  about 1 kHz);
- /joint_states rate of the hardware node against the emulated bus (target >= 50 Hz);
- IK solve time, median and p99, for targets 1-2 cm from the current pose (what one 10 Hz
  command asks) and for random reachable targets (target < 1 ms median);
- simulation physics steps per second and the real-time factor of the reach scene.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import versions, write  # noqa: E402

from hilserl_ros.kinematics import SO101Kinematics  # noqa: E402
from hilserl_ros.sim.world import HOME, SO101World, scene_path  # noqa: E402


def ik_times(n: int = 500) -> dict:
    kin = SO101Kinematics()
    rng = np.random.default_rng(0)
    out = {}
    for name in ("step", "random"):
        times, errors = [], []
        for _ in range(n):
            if name == "step":  # a 10 Hz command: 1-2 cm from where the arm is
                q = np.clip(HOME + rng.normal(0, 0.3, 6), kin.lower, kin.upper)
                direction = rng.normal(size=3)
                target = kin.position(q) + direction / np.linalg.norm(direction) * rng.uniform(0.01, 0.02)
            else:
                q_true = rng.uniform(kin.lower * 0.8, kin.upper * 0.8)
                target = kin.position(q_true)
                q = np.clip(q_true + rng.normal(0, 0.4, 6), kin.lower, kin.upper)
            start = time.perf_counter()
            result = kin.solve(target, q)
            times.append(time.perf_counter() - start)
            errors.append(result.position_error)
        times_ms = np.array(times) * 1e3
        out[name] = {"median_ms": float(np.median(times_ms)), "p99_ms": float(np.percentile(times_ms, 99)),
                     "max_error_mm": float(np.max(errors) * 1e3)}
    return out


def sim_rate(seconds: float = 3.0) -> dict:
    world = SO101World("reach")
    world.set_joint_targets(HOME)
    steps, start = 0, time.perf_counter()
    sim_start = world.time
    while time.perf_counter() - start < seconds:
        world.step(0.02)
        steps += 10
    wall = time.perf_counter() - start
    return {"steps_per_s": steps / wall, "timestep_s": world.model.opt.timestep,
            "real_time_factor": (world.time - sim_start) / wall}


def render_rate(frames: int = 40) -> dict:
    """Frames per second of each policy camera at 128x128 (hilserl_ros.sim.render), and, as the
    reference in the same run, the scene drawn as it ships (full meshes, its shadow map)."""
    import mujoco

    world = SO101World("pick_cube")
    out = {"size": 128}
    for camera in ("front", "wrist"):
        world.render(camera)
        start = time.perf_counter()
        for _ in range(frames):
            world.render(camera)
        out[camera] = {"frames_per_s": frames / (time.perf_counter() - start)}
    world.close()
    spec = mujoco.MjSpec.from_file(scene_path())
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, 128, 128)
    renderer.update_scene(data, camera="front")
    renderer.render()
    start = time.perf_counter()
    reference_frames = max(3, frames // 10)
    for _ in range(reference_frames):
        renderer.update_scene(data, camera="front")
        renderer.render()
    out["as_shipped_front"] = {"frames_per_s": reference_frames / (time.perf_counter() - start),
                               "faces": int(model.nmeshface)}
    renderer.close()
    out["speedup"] = out["front"]["frames_per_s"] / out["as_shipped_front"]["frames_per_s"]
    return out


def joint_state_rate(seconds: float = 4.0) -> dict:
    """/joint_states rate of the hardware node against the emulated bus (both in processes of
    their own, as deployed), from the node's own stamps."""
    import subprocess
    import tempfile

    import rclpy
    from sensor_msgs.msg import JointState

    from hilserl_ros import topics
    from hilserl_ros.ros import qos

    link = os.path.join(tempfile.mkdtemp(), "bus")
    env = {**os.environ, "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "88"),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    emulator = subprocess.Popen([sys.executable, "-m", "hilserl_ros.hardware.emulator", "--link", link], env=env)
    time.sleep(1.0)
    driver = subprocess.Popen([sys.executable, "-m", "hilserl_ros.nodes.hardware_node", "--ros-args",
                               "-p", f"port:={link}", "--log-level", "warn"], env=env)
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    rclpy.init()
    node = rclpy.create_node("bench_joint_states")
    stamps = []
    node.create_subscription(JointState, topics.JOINT_STATES,
                             lambda m: stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9), qos.SENSOR)
    try:
        deadline = time.monotonic() + 20
        while len(stamps) < 10 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        stamps.clear()
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for proc in (driver, emulator):
            proc.terminate()
            proc.wait(10)
    gaps = np.diff(stamps)
    return {"hz_from_stamps": (len(stamps) - 1) / (stamps[-1] - stamps[0]), "received": len(stamps),
            "max_gap_ms": float(gaps.max() * 1e3), "target_hz": 50}


def main() -> int:
    from world_bus import measure_sync_read_rate

    bus = measure_sync_read_rate(3.0)
    print(f"[bench] servo sync read (6 servos, 1 Mbps wire timing): {bus['reads_per_s']:.0f} reads/s "
          f"(min {bus['min']:.0f}, max {bus['max']:.0f}); wire limit {bus['wire_limit_hz']:.0f} Hz")
    ik = ik_times()
    print(f"[bench] IK 1-2 cm step: median {ik['step']['median_ms']:.3f} ms, p99 {ik['step']['p99_ms']:.3f} ms; "
          f"random reachable: median {ik['random']['median_ms']:.3f} ms, p99 {ik['random']['p99_ms']:.3f} ms, "
          f"worst error {ik['random']['max_error_mm']:.3f} mm")
    states = joint_state_rate()
    print(f"[bench] /joint_states from the hardware node: {states['hz_from_stamps']:.1f} Hz "
          f"(largest gap {states['max_gap_ms']:.0f} ms; target >= 50 Hz)")
    sim = sim_rate()
    print(f"[bench] MuJoCo reach scene: {sim['steps_per_s']:.0f} physics steps/s "
          f"= {sim['real_time_factor']:.1f}x real time")
    cam = render_rate()
    print(f"[bench] cameras 128x128 (software GL, low-poly meshes, no shadows): front {cam['front']['frames_per_s']:.0f} "
          f"frames/s, wrist {cam['wrist']['frames_per_s']:.0f} frames/s; the scene as shipped "
          f"({cam['as_shipped_front']['faces']} faces, shadows): {cam['as_shipped_front']['frames_per_s']:.1f} frames/s "
          f"({cam['speedup']:.0f}x)")
    path = write("world", {"versions": versions("mujoco", "pin", "feetech-servo-sdk", "numpy"),
                           "servo_sync_read": bus, "joint_states": states, "ik": ik, "simulation": sim, "render": cam,
                           "targets": {"sync_read_hz": 200, "ik_median_ms": 1.0}})
    print(f"[bench] wrote {path}")
    print(f"[bench] sync read {bus['reads_per_s']:.0f} Hz (target >= 200), joint states "
          f"{states['hz_from_stamps']:.0f} Hz (target >= 50), IK median "
          f"{ik['step']['median_ms']:.3f} ms (target < 1), sim {sim['real_time_factor']:.1f}x real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
