"""The project's interfaces, built by colcon, travel between real nodes over DDS intact."""
import array
import hashlib
import os

import pytest

from hilserl_ros.msg import (
    EndEffectorCommand,
    EpisodeEvent,
    EpisodeStats,
    Intervention,
    LearnerStats,
    PolicyWeights,
    Transition,
)
from hilserl_ros.ros import qos
from hilserl_ros.srv import SaveCheckpoint
from ros_harness import REPO_ROOT, wait_for
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

MESSAGES = [Transition, PolicyWeights, LearnerStats, EpisodeStats, EndEffectorCommand, Intervention, EpisodeEvent]


def _image(seed: int) -> Image:
    img = Image(height=4, width=5, encoding="rgb8", step=15, is_bigendian=0)
    img.header.frame_id = f"camera_{seed}"
    img.data = bytes((seed * 7 + i) % 256 for i in range(60))
    return img


def filled(msg_type, seed: int = 3):
    """A message whose every field holds a distinct, non-default value."""
    msg = msg_type()
    for i, (name, typ) in enumerate(msg.get_fields_and_field_types().items()):
        v = seed + i + 1
        if name == "header":
            msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 1700000000 + v, 123456 + v, f"frame{v}"
        elif typ == "sequence<sensor_msgs/Image>":
            setattr(msg, name, [_image(v), _image(v + 1)])
        elif typ == "sequence<uint8>":
            setattr(msg, name, bytes((v + k) % 256 for k in range(300)))
        elif typ.startswith("sequence<float"):
            setattr(msg, name, [v + 0.25 * k for k in range(7)])
        elif typ == "string":
            setattr(msg, name, f"{name}-{v}-ü")
        elif typ == "boolean":
            setattr(msg, name, True)
        elif typ.startswith(("float", "double")):
            setattr(msg, name, v + 0.5)
        elif typ.startswith(("uint", "int", "octet")):
            setattr(msg, name, v)
        else:
            raise AssertionError(f"test does not know how to fill {msg_type.__name__}.{name}: {typ}")
    return msg


def as_plain(value):
    """Message -> nested plain Python values, so two messages compare field by field."""
    if hasattr(value, "get_fields_and_field_types"):
        return {name: as_plain(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if isinstance(value, (list, tuple)):
        return [as_plain(v) for v in value]
    if isinstance(value, array.array):
        return value.tolist()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def test_every_field_is_documented():
    """Each field line of each .msg/.srv carries a comment (names, units, meaning)."""
    undocumented = []
    for folder in ("msg", "srv"):
        for fname in os.listdir(os.path.join(REPO_ROOT, folder)):
            with open(os.path.join(REPO_ROOT, folder, fname)) as fh:
                for line in fh:
                    line = line.strip()
                    if not line or line.startswith("#") or line == "---" or line.startswith("std_msgs/Header"):
                        continue
                    if "#" not in line:
                        undocumented.append(f"{fname}: {line}")
    assert not undocumented, "fields without a comment:\n" + "\n".join(undocumented)


def test_filled_messages_differ_from_defaults():
    # guards the round-trip test below: a field left at its default would prove nothing
    for msg_type in MESSAGES:
        full, empty = as_plain(filled(msg_type)), as_plain(msg_type())
        same = [k for k in full if full[k] == empty[k]]
        assert not same, f"{msg_type.__name__}: fields still at default: {same}"


def test_episode_event_constants():
    assert {EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.RERECORD, EpisodeEvent.START} == {1, 2, 3, 4}


@pytest.mark.parametrize("msg_type", MESSAGES, ids=lambda t: t.__name__)
def test_round_trip_between_two_nodes(ros, msg_type):
    sender, receiver = ros.node("sender"), ros.node("receiver")
    topic = f"roundtrip_{msg_type.__name__.lower()}"
    probe = ros.probe(receiver, msg_type, topic, qos.EVENTS)
    pub = sender.create_publisher(msg_type, topic, qos.EVENTS)
    ros.wait_for_subscribers(pub)
    sent = filled(msg_type)
    pub.publish(sent)
    (got,) = probe.wait(1, timeout=30)
    assert as_plain(got) == as_plain(sent)


def test_round_trip_through_another_process(ros, node_process):
    """A Transition crosses two process boundaries (here -> echo node -> here) intact."""
    echo = node_process("helper_nodes.echo", "-p", "msg_type:=hilserl_ros/msg/Transition",
                        "-p", "in_topic:=to_echo", "-p", "out_topic:=from_echo", name="echo_transition")
    echo.wait_output("echo ready", timeout=30)
    node = ros.node("roundtrip_client")
    probe = ros.probe(node, Transition, "from_echo", qos.EVENTS)
    pub = node.create_publisher(Transition, "to_echo", qos.EVENTS)
    ros.wait_for_subscribers(pub, timeout=30)
    wait_for(lambda: probe.sub.get_publisher_count() >= 1, 30, "the echo node's publisher")
    sent = [filled(Transition, seed=s) for s in range(5)]
    for i, msg in enumerate(sent):
        msg.seq = i + 1
        pub.publish(msg)
    got = probe.wait(5, timeout=30)
    assert [as_plain(m) for m in got] == [as_plain(m) for m in sent]
    # and the node process stops cleanly on SIGINT (what Ctrl-C sends), without a SIGKILL
    assert echo.stop(timeout=30, escalate=False) == 0, echo.output


def test_policy_weights_carry_a_megabyte_of_safetensors_bytes(ros):
    sender, receiver = ros.node("weights_sender"), ros.node("weights_receiver")
    probe = ros.probe(receiver, PolicyWeights, "weights_rt", qos.LATCHED)
    pub = sender.create_publisher(PolicyWeights, "weights_rt", qos.LATCHED)
    ros.wait_for_subscribers(pub)
    payload = os.urandom(1 << 20)
    pub.publish(PolicyWeights(version=7, format="safetensors", data=payload,
                              sha256=hashlib.sha256(payload).hexdigest(), metadata_json='{"obs_dim": 20}'))
    (got,) = probe.wait(1, timeout=30)
    assert bytes(got.data) == payload
    assert hashlib.sha256(bytes(got.data)).hexdigest() == got.sha256
    assert got.version == 7 and got.format == "safetensors"


def test_save_checkpoint_service_round_trip(ros):
    server, client_node = ros.node("ckpt_server"), ros.node("ckpt_client")
    seen = []

    def handle(request, response):
        seen.append(request.path)
        response.success, response.message = True, "saved"
        response.written_path = os.path.join(request.path, "checkpoint.pt")
        return response

    server.create_service(SaveCheckpoint, "save_checkpoint_rt", handle)
    client = client_node.create_client(SaveCheckpoint, "save_checkpoint_rt")
    reply = ros.call(client, SaveCheckpoint.Request(path="/tmp/run1"))
    assert seen == ["/tmp/run1"]
    assert reply.success and reply.written_path == "/tmp/run1/checkpoint.pt"

