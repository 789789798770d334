"""MuJoCo SO-101 world node (/sim).

Runs the physics of hilserl_ros.sim.world at ``time_scale`` times real time and serves the
simulated arm as an emulated STS3215 bus on a pseudo-terminal (``sim_port``), so the hardware
node drives it with the same driver and protocol as the real arm. Publishes:

- /clock (rosgraph_msgs/Clock): simulation time, for nodes run with use_sim_time;
- /sim/task_state (hilserl_ros/TaskState): goal, EE position, distance, reward, success at
  ``task_rate`` (simulated Hz);
The camera view is rendered by a node of its own (sim_camera_node), in its own process:
software rendering holds this process's interpreter for ~0.25 s a frame, which would stall the
emulated servo bus that answers the driver from here.

Service /sim/reset (std_srvs/Trigger): new episode (new target or cube position), arm home.

/diagnostics (status ``sim: lockstep``, every ``report_period`` wall seconds): the boundaries
held so far, how many were released by their command and how many waited the whole
``lockstep_timeout`` (many: nobody is commanding, or commands arrive late), the boundary held
now, the newest command stamp seen and the count of bus writes.

Lockstep (``lockstep``, on in simulation by default). The control loop runs over DDS and the
servo bus in wall time: actor -> IK -> driver -> bus -> physics, then bus -> driver -> IK ->
actor, some 20-40 ms on two loaded cores. At ``time_scale`` 3 that is most of a 100 ms
control period of simulated time, and the observation after an action barely showed it (the
motion showed one step later, so transitions paired each action with its predecessor's
effect). With lockstep, simulated time stops at every control period boundary
(k / ``control_rate``), publishes the task state of that instant, and goes on only once the
driver wrote the next command to the bus (or after ``lockstep_timeout`` of wall time, when
nobody commands). Each action then gets exactly one period of physics, whatever the CPU load
and time_scale, as in the ROS-free env (hilserl_ros.sim.env); time_scale is an upper bound.

A write releases a boundary only once the driver said it wrote a command stamped at or after
it (/joint_commands/applied; the actor stamps its command with the boundary it acts on, the IK
node and the driver pass the stamp on). Without that pairing, one late command (a boundary that
timed out on a loaded machine) would release the next boundary, the command for that one the
one after, and every action would from then on act a period late: a loop that is stable only
while no wait ever times out. The stamp is taken from the driver's word, not from
/joint_commands: the sim may see a command there before the driver wrote it, and a late write
of the command before would then release the boundary with the old target on the bus. The
writes counted are those after the boundary's task state went out (counted before it is
published, so a fast answer is never taken for an old write). A command stamped in another
clock (a tool publishing with wall time) answers the boundary held when it is written. A wait that does time out (a machine too
loaded to answer within ``lockstep_timeout``) still leaves a period without its action, and
the late command moves the arm in the next one: the task states at the ends of those two
periods say ``command_late``, and the actor sends no transition for them, so the learner never
learns a motion as the effect of an action that did not cause it.
"""
from __future__ import annotations

import math
import threading
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy._rclpy_pybind11 import RCLError
from rclpy.clock import Clock as RosClock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from hilserl_ros import topics
from hilserl_ros.hardware.emulator import INST_ACTION, INST_SYNC_WRITE, INST_WRITE
from hilserl_ros.hardware.bus import SERVO_IDS
from hilserl_ros.msg import TaskState
from hilserl_ros.nodes.hardware_node import default_sim_port
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node, start_worker
from hilserl_ros.sim.world import TASKS, SO101World

CHUNK = 0.01  # simulated seconds stepped between two checks of the wall clock

PARAMS = [
    ParamSpec("task", "reach", "task: " + " | ".join(TASKS), read_only=True,
              validator=lambda v: None if v in TASKS else f"must be one of {TASKS}"),
    ParamSpec("seed", 0, "random seed of targets and cube positions", read_only=True),
    ParamSpec("time_scale", 1.0, "simulated seconds per wall-clock second", min=0.1, max=20.0),
    ParamSpec("task_rate", 50.0, "task state rate (simulated time) without lockstep (with it: one per period)",
              min=1.0, max=100.0, unit="Hz"),
    ParamSpec("sim_port", "", "path of the emulated servo bus (a symlink to the pty); empty = per-domain default",
              read_only=True),
    ParamSpec("wire_timing", True, "emulate the 1 Mbps wire time of each servo packet", read_only=True),
    ParamSpec("lockstep", True, "stop simulated time at each control period until the next command is written",
              read_only=True),
    ParamSpec("control_rate", 10.0, "control periods per simulated second (the actor's control_rate)", min=1.0,
              max=100.0, unit="Hz", read_only=True),
    ParamSpec("lockstep_timeout", 1.0, "longest wait for a command at a period boundary", min=0.01, max=10.0,
              unit="s"),
    ParamSpec("report_period", 1.0, "wall seconds between lockstep diagnostics", min=0.1, max=600.0, unit="s",
              read_only=True),
]

# bus instructions that carry a command (goal positions, torque)
WRITE_INSTRUCTIONS = (INST_WRITE, INST_SYNC_WRITE, INST_ACTION)


def sim_time(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


class SimNode(Node):
    def __init__(self, **node_options):
        super().__init__("sim", **node_options)
        from hilserl_ros.hardware.emulator import EmulatedServoBus
        from hilserl_ros.sim.servo_backend import MujocoServoBackend

        self.params = declare(self, PARAMS)
        self.world = SO101World(self.params["task"], seed=self.params["seed"])
        self.episode = 1
        self.backend = MujocoServoBackend(self.world)
        # the arm's torque as the driver sets it: on at start, off on Ctrl-C or a fault (said, so tests can see it)
        self.backend.on_torque = lambda on: self.get_logger().info("servo bus: torque " + (
            "on" if on.all() else "off" if not on.any() else f"on for ids {on.nonzero()[0] + 1}"))
        self.bus = EmulatedServoBus(ids=SERVO_IDS, backend=self.backend, wire_timing=self.params["wire_timing"],
                                    link_path=self.params["sim_port"] or default_sim_port())
        self.bus.start()
        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, qos.SENSOR)
        self.task_pub = self.create_publisher(TaskState, topics.TASK_STATE, qos.EVENTS)
        self.create_service(Trigger, topics.SIM_RESET, self._on_reset)
        self.command_stamp = -1.0  # newest stamp the driver wrote a command for (s): which boundary was answered
        self.create_subscription(JointState, topics.JOINT_COMMANDS_APPLIED, self._on_command, qos.LATCHED)
        self.lockstep_counts = (0, 0)  # (boundaries held, of them timed out): one tuple, read whole
        # released by their own command: the last two boundaries (a late command moves the arm in
        # the period after the one it was meant for, so a period is clean only if both were)
        self.released = (True, True)
        self.holding_at: tuple[float, float] | None = None  # (boundary in simulated s, its timeout) held now
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.EVENTS)
        if self.params["lockstep"]:
            steady = RosClock(clock_type=ClockType.STEADY_TIME)
            self.create_timer(self.params["report_period"], self._diagnose, clock=steady)
        self._stop = threading.Event()
        self._physics = start_worker(self, self._run_physics, "physics")  # its death is the node's
        self.get_logger().info(f"task {self.world.task}, servo bus on {self.bus.port} "
                               f"(link {self.bus.link_path}), time scale {self.params['time_scale']}")

    # ------------------------------------------------------------------ loops
    def _run_physics(self) -> None:
        lockstep = self.params["lockstep"]
        period = 1.0 / self.params["control_rate"]
        timestep = self.world.model.opt.timestep
        next_task = 0.0
        wall_start, sim_start = time.monotonic(), self.world.time
        hold_at = (round(self.world.time / period) + 1) * period
        scale = self.params["time_scale"]
        unstable = self.world.unstable_resets
        while not self._stop.is_set():
            if self.params["time_scale"] != scale:  # re-anchor on a live change
                scale = self.params["time_scale"]
                wall_start, sim_start = time.monotonic(), self.world.time
            chunk = min(CHUNK, hold_at - self.world.time) if lockstep else CHUNK
            if chunk > timestep / 2:
                self.world.step(chunk)
            now = self.world.time
            if self.world.unstable_resets != unstable:
                unstable = self.world.unstable_resets
                self.get_logger().error(f"MuJoCo found the state unstable at t={now:.3f} s and reset it "
                                        f"({unstable} times so far); the episode goes on from that state")
            if lockstep and hold_at - now > 1.5 * period:  # time went back: never run periods unheld
                self.get_logger().error(f"simulated time went back to {now:.3f} s (next boundary was "
                                        f"{hold_at:.3f} s): boundaries re-anchored")
                hold_at = (math.floor(now / period + 1e-9) + 1) * period
                wall_start, sim_start = time.monotonic(), now
            if not self.context.ok():
                return  # shutting down: close() stops this thread, publishing is over
            boundary = lockstep and now >= hold_at - timestep / 2
            writes = self._writes()  # before the boundary's state goes out: its answer comes after
            try:
                self.clock_pub.publish(Clock(clock=sim_time(now)))
                if boundary or (not lockstep and now >= next_task):
                    next_task = now + 1.0 / self.params["task_rate"]
                    self._publish_task(now)
            except RCLError:
                if self.context.ok():
                    raise
                return  # the context went down between the check and the publish
            if boundary:
                self._hold(writes)
                hold_at += period
                wall_start, sim_start = time.monotonic(), self.world.time  # the wait is not lag
                continue
            # keep simulated time at time_scale x wall time (never ahead of it)
            ahead = (now - sim_start) / scale - (time.monotonic() - wall_start)
            if ahead > 0:
                self._stop.wait(min(ahead, period))  # bounded: a wrong anchor costs one period, not minutes
            elif ahead < -0.5:  # the CPU cannot keep up: do not try to catch up in a burst
                wall_start, sim_start = time.monotonic(), now

    def _writes(self) -> int:
        counts = self.bus.stats.instructions
        return sum(counts[i] for i in WRITE_INSTRUCTIONS)

    def _on_command(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        if stamp > self.world.time + 1e-6:
            # not a simulated time (a tool's wall-clock stamp): it answers the boundary held now,
            # and must not stand for every boundary to come
            stamp = self.world.time
        self.command_stamp = max(self.command_stamp, stamp)

    def _hold(self, start: int) -> None:
        """Simulated time stands still until the driver writes the command for this boundary
        (or the timeout); ``start``: the bus writes before the boundary's state was published."""
        limit = self.params["lockstep_timeout"]
        deadline = time.monotonic() + limit
        boundary = self.world.time - self.world.model.opt.timestep / 2
        self.holding_at = (self.world.time, limit)
        timed_out = False
        while (self._writes() == start or self.command_stamp < boundary) and not self._stop.is_set():
            if time.monotonic() >= deadline:
                timed_out = True
                break
            self._stop.wait(0.0005)
        holds, timeouts = self.lockstep_counts
        self.lockstep_counts = (holds + 1, timeouts + timed_out)
        self.released = (self.released[1], not timed_out)
        self.holding_at = None

    def _diagnose(self) -> None:
        holding, (holds, timeouts) = self.holding_at, self.lockstep_counts
        status = DiagnosticStatus(name="sim: lockstep", hardware_id=topics.TASK_STATE)
        if holds and timeouts == holds:
            status.level = DiagnosticStatus.WARN
            status.message = "every boundary waited the whole lockstep_timeout: nobody commands"
        else:
            status.level = DiagnosticStatus.OK
            status.message = f"{holds - timeouts} of {holds} boundaries released by their command"
        status.values = [KeyValue(key="boundaries", value=str(holds)),
                         KeyValue(key="released_by_command", value=str(holds - timeouts)),
                         KeyValue(key="timeouts", value=str(timeouts)),
                         KeyValue(key="holding_at", value="" if holding is None else f"{holding[0]:.6f}"),
                         KeyValue(key="holding_timeout", value="" if holding is None else f"{holding[1]:g}"),
                         KeyValue(key="newest_command_stamp", value=f"{self.command_stamp:.9f}"),
                         KeyValue(key="bus_writes", value=str(self._writes()))]
        out = DiagnosticArray(status=[status])
        out.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(out)

    def _publish_task(self, now: float) -> None:
        state = self.world.task_state()
        msg = TaskState(task=state.task, episode=self.episode, distance=state.distance, reward=state.reward,
                        success=state.success, command_late=self.params["lockstep"] and not all(self.released))
        msg.header.stamp, msg.header.frame_id = sim_time(now), topics.BASE_FRAME
        msg.goal.x, msg.goal.y, msg.goal.z = (float(v) for v in state.goal)
        msg.ee_position.x, msg.ee_position.y, msg.ee_position.z = (float(v) for v in state.ee_position)
        self.task_pub.publish(msg)

    # ------------------------------------------------------------------ services
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        state = self.world.reset()
        self.backend.after_reset()
        self.episode += 1
        response.success = True
        response.message = f"episode {self.episode}: goal {[round(float(v), 3) for v in state.goal]}"
        self._publish_task(self.world.time)
        return response

    def close(self) -> None:
        self._stop.set()
        self._physics.join(timeout=2)
        holds, timeouts = self.lockstep_counts
        if self.params["lockstep"] and holds:
            # many timeouts: nobody commanded at the boundaries (no actor, or it is waiting for something)
            self.get_logger().info(f"lockstep: {holds} period boundaries, {timeouts} of them "
                                   f"waited the whole lockstep_timeout for a command")
        self.bus.stop()
        self.world.close()


def main():
    return run_node(SimNode)


if __name__ == "__main__":
    raise SystemExit(main())
