"""The end-effector IK node on real DDS: deltas x action_scale -> joint targets, the box
clamp, action_scale changed live through SetParameters, bad commands dropped, pose and markers."""
import math

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.kinematics import SO101Kinematics
from hilserl_ros.msg import EndEffectorCommand
from hilserl_ros.nodes.ik_node import IKNode
from hilserl_ros.ros import qos
from hilserl_ros.sim.world import DEFAULT_BOX, HOME
from ros_harness import wait_for

pytestmark = pytest.mark.ros


@pytest.fixture
def rig(ros):
    ik = ros.add(IKNode(context=ros.context))
    driver = ros.node("fake_driver")
    states = driver.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
    commands_in = driver.create_publisher(EndEffectorCommand, topics.EE_COMMAND, qos.EVENTS)
    joint_cmds = ros.probe(driver, JointState, topics.JOINT_COMMANDS, qos.EVENTS)
    poses = ros.probe(driver, PoseStamped, topics.EE_POSE, qos.EVENTS)
    ros.wait_for_subscribers(commands_in)
    ros.wait_for_subscribers(states)

    def at(q):
        msg = JointState(name=list(JOINT_NAMES), position=[float(v) for v in q])

        def seen():
            states.publish(msg)  # best effort, as a driver publishes them: again until one gets through
            return ik.measured is not None and np.allclose(ik.measured, q)

        wait_for(seen, 30, "the IK node to see the joints", period=0.1)

    def command(dx=0.0, dy=0.0, dz=0.0, gripper=0.0):
        n = len(joint_cmds.messages)
        commands_in.publish(EndEffectorCommand(dx=dx, dy=dy, dz=dz, gripper=gripper))
        return joint_cmds.wait(n + 1, timeout=30)[-1]

    return ik, driver, at, command, poses


def test_delta_times_action_scale_moves_the_end_effector(rig):
    ik, _, at, command, poses = rig
    kin = SO101Kinematics()
    at(HOME)
    start = kin.position(HOME)
    out = command(dx=1.0, dz=-0.5)
    q = np.array(out.position)
    assert list(out.name) == list(JOINT_NAMES)
    assert np.allclose(kin.position(q) - start, [0.02, 0.0, -0.01], atol=1e-3)
    pose = poses.wait(1, timeout=30)[-1]
    assert pose.header.frame_id == topics.BASE_FRAME
    assert np.allclose([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z], start, atol=1e-6)


def test_action_scale_set_live_applies_to_the_next_command(rig, ros):
    ik, driver, at, command, _ = rig
    kin = SO101Kinematics()
    at(HOME)
    client = driver.create_client(SetParameters, "/ee_ik/set_parameters")
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.04)
    (result,) = ros.call(client, SetParameters.Request(parameters=[Parameter(name="action_scale", value=value)])).results
    assert result.successful, result.reason
    moved = kin.position(np.array(command(dy=1.0).position)) - kin.position(HOME)
    assert moved[1] == pytest.approx(0.04, abs=1e-3)
    too_big = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.5)
    (refused,) = ros.call(client, SetParameters.Request(parameters=[Parameter(name="action_scale", value=too_big)])).results
    assert not refused.successful and "range" in refused.reason
    assert ik.params["action_scale"] == 0.04


def test_targets_outside_the_box_are_clamped_to_it(rig):
    ik, _, at, command, _ = rig
    kin = SO101Kinematics()
    near_top = kin.solve([0.25, 0.0, DEFAULT_BOX[1][2] - 0.005], HOME).q
    at(near_top)
    reached = kin.position(np.array(command(dz=1.0).position))  # would go 2 cm up, 1.5 cm past the box
    assert reached[2] == pytest.approx(DEFAULT_BOX[1][2], abs=1e-3)
    assert ik.clamped_commands == 1


def test_gripper_commands_open_close_and_hold(rig):
    _, _, at, command, _ = rig
    at(HOME)  # gripper closed (0 rad); at most gripper_max_step (0.4 rad) per command
    assert command(gripper=1.0).position[5] == pytest.approx(0.4)
    assert command(gripper=0.0).position[5] == pytest.approx(0.8)  # stay: one open command finishes opening
    assert command(gripper=0.0).position[5] == pytest.approx(1.2)
    assert command(gripper=0.0).position[5] == pytest.approx(1.2)  # open: stays there
    assert command(gripper=-1.0).position[5] == pytest.approx(0.8)
    assert [command(gripper=0.0).position[5] for _ in range(3)] == pytest.approx([0.4, 0.0, 0.0])


def test_bad_commands_are_dropped_and_the_node_keeps_working(rig):
    ik, _, at, command, _ = rig
    at(HOME)
    ik._on_command(EndEffectorCommand(dx=math.nan))
    ik._on_command(EndEffectorCommand(dz=math.inf))
    assert ik.drops.total == 2
    assert len(command(dx=0.5).position) == 6  # still answering


def test_workspace_markers_are_latched_for_late_subscribers(rig, ros):
    late = ros.node("late_rviz")
    markers = ros.probe(late, MarkerArray, topics.WORKSPACE_MARKERS, qos.LATCHED)
    (msg,) = markers.wait(1, timeout=30)
    box = msg.markers[0]
    assert len(box.points) == 24  # 12 edges
    xs = {round(p.x, 3) for p in box.points}
    assert xs == {DEFAULT_BOX[0][0], DEFAULT_BOX[1][0]}
