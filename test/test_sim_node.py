"""The simulated world through the same path as the real arm: sim node (MuJoCo + emulated
servo bus on a pty) <- hardware node (real SDK) <- IK node, all over DDS."""
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from hilserl_ros import topics
from hilserl_ros.msg import EndEffectorCommand, TaskState
from hilserl_ros.ros import qos
from ros_harness import wait_for

pytestmark = pytest.mark.ros


@pytest.fixture
def world(tmp_path, node_process, ros):
    port = str(tmp_path / "sim_bus")
    sim = node_process("hilserl_ros.nodes.sim_node", "-p", f"sim_port:={port}", "-p", "seed:=4", name="sim")
    sim.wait_output("servo bus on", timeout=30)
    driver = node_process("hilserl_ros.nodes.hardware_node", "-p", "use_sim:=true", "-p", f"sim_port:={port}",
                          name="so101_driver")
    ik = node_process("hilserl_ros.nodes.ik_node", name="ee_ik")
    node_process("hilserl_ros.nodes.sim_camera_node", "-p", "render_rate:=2.0", "-p", "report_period:=1.0",
                 name="sim_camera")
    peer = ros.node("world_peer")
    probes = {
        "task": ros.probe(peer, TaskState, topics.TASK_STATE, qos.EVENTS),
        "joints": ros.probe(peer, JointState, topics.JOINT_STATES, qos.SENSOR),
        "pose": ros.probe(peer, PoseStamped, topics.EE_POSE, qos.EVENTS),
        "image": ros.probe(peer, Image, topics.CAMERA_IMAGE, qos.SENSOR),
        "clock": ros.probe(peer, Clock, topics.CLOCK, qos.SENSOR),
        "diagnostics": ros.probe(peer, DiagnosticArray, topics.DIAGNOSTICS, qos.EVENTS),
    }
    probes["joints"].wait(5, timeout=30)
    probes["pose"].wait(1, timeout=30)
    return sim, driver, ik, peer, probes


def test_ee_commands_drive_the_simulated_arm_through_the_servo_bus(world, ros):
    sim, driver, ik, peer, probes = world
    commands = peer.create_publisher(EndEffectorCommand, topics.EE_COMMAND, qos.EVENTS)
    wait_for(lambda: commands.get_subscription_count() > 0, 10, "the IK node")
    def where() -> np.ndarray:
        pose = probes["pose"].messages[-1].pose.position
        return np.array([pose.x, pose.y, pose.z])

    start = where()
    deadline = time.monotonic() + 20.0
    sent = 0
    # steps of +x at 2 cm each, at about 10 Hz, until the arm has gone 5 cm (however loaded the machine)
    while where()[0] - start[0] < 0.05 and time.monotonic() < deadline:
        commands.publish(EndEffectorCommand(dx=1.0))
        sent += 1
        time.sleep(0.1)
    time.sleep(1.0)
    moved = where() - start
    assert 0.05 < moved[0] < 0.22 and abs(moved[1]) < 0.02, (moved, sent)  # box x limit caps it at 0.32
    assert sent <= 50, sent  # commands come faster than lockstep periods here: several share one
    task = probes["task"].wait(1, timeout=10)[-1]  # its subscription may match later than the pose one
    assert task.task == "reach" and task.reward == pytest.approx(-task.distance, abs=1e-5)


def test_gripper_commands_open_and_close_the_gripper_servo_through_the_bus(world, ros):
    """EE command gripper -> /ee_ik (ramped target) -> /joint_commands -> driver -> Goal_Position
    of servo 6 on the emulated bus -> MuJoCo -> Present_Position -> /joint_states."""
    sim, driver, ik, peer, probes = world
    commands = peer.create_publisher(EndEffectorCommand, topics.EE_COMMAND, qos.EVENTS)
    wait_for(lambda: commands.get_subscription_count() > 0, 10, "the IK node")

    def gripper() -> float:
        joints = probes["joints"].messages[-1]
        return joints.position[list(joints.name).index("gripper")]

    def press(command: float, expect: float) -> float:
        commands.publish(EndEffectorCommand(gripper=command))  # one press: the target ramps on with "stay"
        deadline = time.monotonic() + 20.0
        while abs(gripper() - expect) > 0.1 and time.monotonic() < deadline:
            time.sleep(0.1)
            commands.publish(EndEffectorCommand(gripper=0.0))
        return gripper()

    assert gripper() == pytest.approx(0.0, abs=0.1)  # HOME: closed
    assert press(1.0, 1.2) == pytest.approx(1.2, abs=0.1)  # gripper_open
    for _ in range(5):  # stay: it stays open
        commands.publish(EndEffectorCommand(gripper=0.0))
        time.sleep(0.1)
    assert gripper() == pytest.approx(1.2, abs=0.1)
    assert press(-1.0, 0.0) == pytest.approx(0.0, abs=0.1)  # gripper_closed


def test_reset_service_starts_a_new_episode_with_a_new_goal(world, ros):
    sim, driver, ik, peer, probes = world
    first = probes["task"].wait(1, timeout=10)[-1]
    client = peer.create_client(Trigger, topics.SIM_RESET)
    reply = ros.call(client, Trigger.Request())
    assert reply.success and "episode 2" in reply.message
    after = probes["task"].wait(1, timeout=10, where=lambda m: m.episode == 2)[-1]
    assert (after.goal.x, after.goal.y, after.goal.z) != (first.goal.x, first.goal.y, first.goal.z)


def test_clock_and_rendered_camera_are_published(world):
    *_, probes = world
    clocks = probes["clock"].wait(20, timeout=10)
    times = [c.clock.sec + c.clock.nanosec * 1e-9 for c in clocks[-20:]]
    assert all(b > a for a, b in zip(times, times[1:]))
    image = probes["image"].wait(1, timeout=30)[-1]
    assert (image.height, image.width, image.encoding) == (128, 128, "rgb8")
    assert len(image.data) == 128 * 128 * 3 and np.frombuffer(bytes(image.data), np.uint8).std() > 5
    # what a frame costs to render while it runs: on /diagnostics, once frames were drawn
    def render_status(msg):
        return next((s for s in msg.status if s.name == "sim_camera: front" and s.level == DiagnosticStatus.OK),
                    None)
    report = probes["diagnostics"].wait(1, timeout=30, where=lambda m: render_status(m) is not None)[-1]
    values = {v.key: v.value for v in render_status(report).values}
    assert render_status(report).hardware_id == topics.CAMERA_IMAGE
    # (a cost, measured: no upper bound, which a loaded machine would stretch past)
    assert float(values["render_ms_median"]) > 0.0 and int(values["frames"]) >= 1
    assert float(values["frames_per_s_possible"]) == pytest.approx(1e3 / float(values["render_ms_median"]), rel=1e-2)


def test_a_late_command_does_not_release_the_next_boundary(world, ros):
    """Lockstep pairs a boundary with the command stamped for it, as the driver wrote it: a
    command for an earlier boundary (late after a timeout) must not let the next period run,
    even when the command for this one was already published (but not yet written), or every
    action after it would act a period late. Read from the sim's lockstep diagnostics, not from wall time: a
    loaded machine may deliver late, never differently."""
    sim, driver, ik, peer, probes = world
    commands = peer.create_publisher(EndEffectorCommand, topics.EE_COMMAND, qos.EVENTS)
    forwarded = ros.probe(peer, JointState, topics.JOINT_COMMANDS, qos.EVENTS)
    wait_for(lambda: commands.get_subscription_count() > 0, 10, "the IK node")
    set_params = peer.create_client(SetParameters, "/sim/set_parameters")
    timeout = Parameter(name="lockstep_timeout",
                        value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=10.0))
    assert ros.call(set_params, SetParameters.Request(parameters=[timeout]), timeout=20).results[0].successful

    def stamp_s(msg) -> float:
        return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

    def next_boundary(after: float):
        return probes["task"].wait(1, timeout=30, where=lambda m: stamp_s(m) > after + 1e-6)[-1]

    def lockstep(since: float, where=lambda v: True) -> dict:
        """Values of the first lockstep report after wall time ``since`` that satisfies ``where``."""
        def report(msg):
            if stamp_s(msg) < since:
                return None
            status = next((s for s in msg.status if s.name == "sim: lockstep"), None)
            values = status and {v.key: v.value for v in status.values}
            return values if values and where(values) else None
        msg = probes["diagnostics"].wait(1, timeout=30, where=lambda m: report(m) is not None)[-1]
        return report(msg)

    # nobody commands: boundaries time out; take one held with the new timeout
    before = lockstep(time.time(), lambda v: v["holding_timeout"] == "10")
    t_held = float(before["holding_at"])
    held = probes["task"].wait(1, timeout=30, where=lambda m: stamp_s(m) == pytest.approx(t_held, abs=1e-3))[-1]
    # a command for this boundary that the driver never writes (it drops it: a joint it does not
    # know), as a slow driver that has not written it yet: its stamp alone releases nothing
    unwritten = JointState(name=["elbow"], position=[0.0])
    unwritten.header.stamp = held.header.stamp
    peer.create_publisher(JointState, topics.JOINT_COMMANDS, qos.EVENTS).publish(unwritten)
    driver.wait_output("dropped a joint command: unknown joints", timeout=30)
    late = EndEffectorCommand()
    assert t_held >= 0.2, t_held  # (a zero stamp would be an unstamped command, which pairs with anything)
    late.header.stamp = _stamp(t_held - 0.1)
    commands.publish(late)  # reaches the bus, but answers the boundary before
    forwarded.wait(1, timeout=30, where=lambda m: stamp_s(m) == pytest.approx(stamp_s(late), abs=1e-6))
    # the sim has seen the driver write the late command: still holding the same boundary
    seen = lockstep(time.time(), lambda v: float(v["newest_command_stamp"]) == pytest.approx(stamp_s(late), abs=1e-6)
                    and int(v["bus_writes"]) > int(before["bus_writes"]))
    assert seen["holding_at"] and float(seen["holding_at"]) == pytest.approx(t_held, abs=1e-3), seen
    assert not [m for m in probes["task"].messages if stamp_s(m) > t_held + 1e-6]
    # the command for this boundary releases it, without waiting out the 10 s timeout
    answer = EndEffectorCommand()
    answer.header.stamp = held.header.stamp
    commands.publish(answer)
    first = next_boundary(t_held)
    after = lockstep(time.time(), lambda v: int(v["boundaries"]) > int(seen["boundaries"]))
    assert int(after["timeouts"]) == int(seen["timeouts"]), (seen, after)
    assert int(after["released_by_command"]) > int(seen["released_by_command"]), (seen, after)
    # the task states say which periods ran with their own command alone: not those while nobody
    # commanded, nor the first answered one (a late command may still come in it); two in a row do
    assert held.command_late and first.command_late
    answer = EndEffectorCommand()
    answer.header.stamp = first.header.stamp
    commands.publish(answer)
    assert not next_boundary(stamp_s(first)).command_late


def _stamp(seconds: float):
    return Time(sec=int(seconds), nanosec=int(round((seconds - int(seconds)) * 1e9)))
