"""Gamepad -> intervention: mapping, deadman, button edges, and the device reader on a real
character stream in the Linux joystick format."""
import os

import numpy as np
import pytest
from sensor_msgs.msg import Joy

from hilserl_ros import topics
from hilserl_ros.joystick import JS_AXIS, JS_BUTTON, JS_EVENT, JS_INIT, JoyMapping, JoystickDevice, deadzone, map_joy
from hilserl_ros.msg import EpisodeEvent, Intervention
from hilserl_ros.nodes.intervention_node import InterventionNode
from hilserl_ros.ros import qos
from ros_harness import wait_for


def pad(lx=0.0, ly=0.0, ry=0.0, lt=1.0, rb=0, lb=0, a=0):
    axes = [lx, ly, lt, 0.0, ry, 1.0]
    buttons = [a, 0, 0, 0, lb, rb, 0, 0]
    return axes, buttons


def test_deadman_sticks_and_gripper_map_to_a_normalised_action():
    m = JoyMapping()
    active, action = map_joy(*pad(ly=1.0, lx=-0.5, ry=0.05, rb=1), m)
    assert active
    assert action[0] == pytest.approx(1.0) and action[1] == pytest.approx(deadzone(-0.5, 0.1))
    assert action[2] == 0.0 and action[3] == 0.0  # inside the deadzone; gripper untouched
    assert not map_joy(*pad(ly=1.0), m)[0]  # no deadman: not in control
    assert map_joy(*pad(lb=1, rb=1), m)[1][3] == -1.0
    assert map_joy(*pad(lt=-1.0, rb=1), m)[1][3] == 1.0
    assert deadzone(0.55, 0.1) == pytest.approx(0.5)


def test_device_reader_decodes_linux_joystick_events(tmp_path):
    path = str(tmp_path / "js0")
    os.mkfifo(path)
    reader_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(path, os.O_WRONLY)
    device = JoystickDevice(path)
    device.fd = reader_fd
    os.write(writer, JS_EVENT.pack(0, 0, JS_BUTTON | JS_INIT, 5) + JS_EVENT.pack(1, 32767, JS_AXIS, 1)
             + JS_EVENT.pack(2, 1, JS_BUTTON, 5) + JS_EVENT.pack(3, -32767, JS_AXIS, 4))
    assert device.poll()
    assert device.buttons[5] == 1 and device.axes[1] == pytest.approx(1.0) and device.axes[4] == pytest.approx(-1.0)
    assert not device.poll()  # nothing new
    os.close(writer)
    with pytest.raises(OSError):
        device.poll()  # the device went away
    device.close()


@pytest.mark.ros
def test_intervention_node_ends_takeover_when_the_pad_goes_silent(ros):
    node = ros.add(InterventionNode(context=ros.context))
    peer = ros.node("pad_peer")
    joy = peer.create_publisher(Joy, topics.JOY, qos.SENSOR)
    interventions = ros.probe(peer, Intervention, topics.INTERVENTION, qos.EVENTS)
    events = ros.probe(peer, EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
    ros.wait_for_subscribers(joy)
    axes, buttons = pad(ly=1.0, rb=1)
    joy.publish(Joy(axes=axes, buttons=buttons))
    wait_for(lambda: any(m.active for m in interventions.messages), 5, "an active intervention")
    active = next(m for m in interventions.messages if m.active)
    assert np.allclose(active.action, [1.0, 0.0, 0.0, 0.0]) and active.source == "joy"
    axes, buttons = pad(ly=1.0, rb=1, a=1)
    joy.publish(Joy(axes=axes, buttons=buttons))  # A pressed: one success event
    (event,) = events.wait(1)
    assert event.event == EpisodeEvent.SUCCESS
    # no new /joy: the node's own timer ends the takeover (how fast is a figure, not a test)
    wait_for(lambda: interventions.messages[-1].active is False, 30, "the deadman to end the takeover")
    assert node.was_active is False
    assert len(events.messages) == 1  # holding A does not repeat the event
