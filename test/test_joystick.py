"""Gamepad -> intervention: mapping, deadman, button edges, and the device reader on a real
character stream in the Linux joystick format; a pad lost mid-takeover ends it at once."""
import os
import time

import numpy as np
import pytest
from sensor_msgs.msg import Joy

from hilserl_ros import topics
from hilserl_ros.joystick import JS_AXIS, JS_BUTTON, JS_EVENT, JS_INIT, JoyMapping, JoystickDevice, deadzone, map_joy
from hilserl_ros.msg import EpisodeEvent, Intervention
from hilserl_ros.nodes.gamepad_node import NEUTRAL_REPEATS
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
    wait_for(lambda: any(m.active for m in interventions.messages), 30, "an active intervention")
    active = next(m for m in interventions.messages if m.active)
    assert np.allclose(active.action, [1.0, 0.0, 0.0, 0.0]) and active.source == "joy"
    axes, buttons = pad(ly=1.0, rb=1, a=1)
    joy.publish(Joy(axes=axes, buttons=buttons))  # A pressed: one success event
    (event,) = events.wait(1, timeout=30)
    assert event.event == EpisodeEvent.SUCCESS
    # no new /joy: the node's own timer ends the takeover (how fast is a figure, not a test)
    wait_for(lambda: interventions.messages[-1].active is False, 30, "the deadman to end the takeover")
    assert node.was_active is False
    assert len(events.messages) == 1  # holding A does not repeat the event


def plug_pad(path: str) -> int:
    """A stand-in joystick device at ``path``: a FIFO the test writes js_event records into.
    The test's end is opened read-write so the node's reader never sees end-of-file while the
    pad is "plugged" (a FIFO without a writer reads as ended), and the FIFO is renamed into
    place so the node can never open it before that end exists."""
    staging = path + ".new"
    os.mkfifo(staging)
    fd = os.open(staging, os.O_RDWR | os.O_NONBLOCK)
    os.rename(staging, path)
    return fd


def init_events(axes: int = 6, buttons: int = 8) -> bytes:
    """What the Linux driver sends on open: every axis and button's state, flagged JS_INIT."""
    return b"".join([JS_EVENT.pack(0, 0, JS_AXIS | JS_INIT, i) for i in range(axes)]
                    + [JS_EVENT.pack(0, 0, JS_BUTTON | JS_INIT, i) for i in range(buttons)])


def is_neutral(msg: Joy) -> bool:
    return len(msg.axes) == 6 and len(msg.buttons) == 8 and not any(msg.axes) and not any(msg.buttons)


@pytest.mark.ros
def test_a_lost_pad_publishes_a_neutral_state_that_ends_the_takeover_and_a_replugged_pad_works(ros, node_process,
                                                                                                tmp_path):
    from rclpy.parameter import Parameter

    path = str(tmp_path / "js0")
    fd = plug_pad(path)
    try:
        # the gamepad node in its own process, as deployed; the intervention node in-process,
        # with the longest silence timeout: only the neutral Joy can end the takeover this early
        pad = node_process("hilserl_ros.nodes.gamepad_node", "-p", f"device:={path}", "-p", "reconnect_period:=0.1",
                           name="gamepad")
        ros.add(InterventionNode(context=ros.context, parameter_overrides=[Parameter("joy_timeout", value=5.0)]))
        peer = ros.node("pad_peer")
        joys = ros.probe(peer, Joy, topics.JOY, qos.SENSOR)
        interventions = ros.probe(peer, Intervention, topics.INTERVENTION, qos.EVENTS)
        pad.wait_output("gamepad connected", timeout=30)
        os.write(fd, init_events() + JS_EVENT.pack(1, 32767, JS_AXIS, 1) + JS_EVENT.pack(1, 1, JS_BUTTON, 5))
        wait_for(lambda: any(m.active for m in interventions.messages), 30, "an active intervention")

        n_joy, n_int = len(joys.messages), len(interventions.messages)
        os.unlink(path)  # unplugged: the device node goes away...
        os.close(fd)  # ...and the node's open descriptor reads as ended
        wait_for(lambda: any(is_neutral(m) for m in joys.messages[n_joy:]), 30, "a neutral Joy")
        ended = wait_for(lambda: next((m for m in interventions.messages[n_int:] if not m.active), None), 30,
                         "the takeover to end")
        # ended by a live neutral Joy (the deadman released: a 4-value action), not by the
        # intervention node's silence timeout (which publishes no action)
        assert list(ended.action) == [0.0] * 4, ended

        pad.wait_output("gamepad lost", timeout=30)  # its stdout may lag the neutral Joy
        time.sleep(0.6)  # several reopen attempts at reconnect_period 0.1 s
        after = joys.messages[n_joy:]
        first = next(i for i, m in enumerate(after) if is_neutral(m))
        # then silence: no stale state (the deadman held when the pad vanished) is ever replayed
        assert all(is_neutral(m) for m in after[first:]) and len(after) - first <= NEUTRAL_REPEATS, after
        assert not interventions.messages[-1].active
        # one warning for the outage, none per reopen attempt
        assert pad.output.count("gamepad lost") == 1 and "no gamepad at" not in pad.output, pad.output

        n_joy, n_int = len(joys.messages), len(interventions.messages)
        fd = plug_pad(path)  # plugged back in
        os.write(fd, init_events())
        wait_for(lambda: pad.output.count("gamepad connected") == 2, 30, "the gamepad node to reopen the device")
        os.write(fd, JS_EVENT.pack(2, -32767, JS_AXIS, 1) + JS_EVENT.pack(2, 1, JS_BUTTON, 5))
        wait_for(lambda: any(len(m.buttons) > 5 and m.buttons[5] for m in joys.messages[n_joy:]), 30,
                 "the deadman pressed on the replugged pad")
        active = wait_for(lambda: next((m for m in interventions.messages[n_int:] if m.active), None), 30,
                          "an intervention from the replugged pad")
        assert active.action[0] == pytest.approx(-1.0)  # its new stick position, not the old one
        assert pad.proc.poll() is None and "Traceback" not in pad.output, pad.output
    finally:
        try:
            os.close(fd)
        except OSError:
            pass  # closed by the test already
