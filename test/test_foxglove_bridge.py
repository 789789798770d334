"""The Foxglove bridge seen from a Foxglove client: a real WebSocket client (written here, on
the `websockets` library) speaking the Foxglove WebSocket protocol to the bridge node on the
test's own ROS domain. Topics arrive as cdr/ros2msg channels and decode to what was
published; the Parameters panel's get/set reach a real node's parameters (refusals leave the
value alone); meshes are served, escapes refused; /tf from /joint_states matches Pinocchio
FK; the port comes from the launch argument, and a busy one is one line, not a crash. Plus the
layout file shipped for the Foxglove app."""
from __future__ import annotations

import json
import math
import os
import re
import socket
import struct
import threading
from contextlib import ExitStack

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import Log, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Int32, String
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hilserl_ros import topics
from hilserl_ros.foxglove_bridge import (
    AssetResolver,
    bind_failure_message,
    hilserl_asset_resolver,
    lerobot_mesh_directory,
    native_to_ros,
    split_parameter_name,
    to_foxglove_parameter,
)
from hilserl_ros.graph import TRAIN_GRAPH, share_dir
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.kinematics import SO101Kinematics
from hilserl_ros.launcher import node_command
from hilserl_ros.msg import EpisodeStats
from hilserl_ros.nodes.foxglove_bridge_node import FoxgloveBridgeNode
from hilserl_ros.nodes.scripted_human_node import ScriptedHumanNode
from hilserl_ros.recording.types import UnknownMessageType, shared_types
from hilserl_ros.ros import qos
from hilserl_ros.ros.topic_filter import TopicFilter
from ros_harness import REPO_ROOT, wait_for

pytestmark = pytest.mark.ros

MESSAGE_DATA, FETCH_ASSET_RESPONSE = 0x01, 0x04  # binary opcodes, server -> client
LAYOUT = os.path.join(REPO_ROOT, "foxglove", "hilserl_layout.json")


# --------------------------------------------------------------------------- a Foxglove client


class FoxgloveClient:
    """What the Foxglove app does over the WebSocket, reduced to what the tests need: JSON ops
    are collected in order, binary frames decoded by opcode (message data: uint32 LE
    subscription id, uint64 LE timestamp, payload; fetch asset response: uint32 request id,
    uint8 status, uint32 error length, error, data)."""

    def __init__(self, port: int):
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(
            f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"], open_timeout=10,
            max_size=None))
        self.ops: list[dict] = []
        self.messages: list[tuple[int, int, bytes]] = []
        self.assets: dict[int, tuple[int, str, bytes]] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                with self._lock:
                    if isinstance(frame, str):
                        self.ops.append(json.loads(frame))
                    elif frame[0] == MESSAGE_DATA:
                        sub_id, stamp = struct.unpack_from("<IQ", frame, 1)
                        self.messages.append((sub_id, stamp, bytes(frame[13:])))
                    elif frame[0] == FETCH_ASSET_RESPONSE:
                        request_id, status, length = struct.unpack_from("<IBI", frame, 1)
                        error = frame[10:10 + length].decode()
                        self.assets[request_id] = (status, error, bytes(frame[10 + length:]))
        except ConnectionClosed:
            pass

    def send(self, **op) -> None:
        self.ws.send(json.dumps(op))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def wait_op(self, op: str, where=lambda m: True, timeout: float = 30.0) -> dict:
        def found():
            with self._lock:
                return next((m for m in self.ops if m["op"] == op and where(m)), None)

        return wait_for(found, timeout, f"a {op!r} message from the bridge")

    def channels(self) -> dict[str, dict]:
        """Advertised channels by topic, minus those unadvertised since."""
        with self._lock:
            by_id = {}
            for m in self.ops:
                if m["op"] == "advertise":
                    by_id.update({c["id"]: c for c in m["channels"]})
                elif m["op"] == "unadvertise":
                    for cid in m["channelIds"]:
                        by_id.pop(cid, None)
        return {c["topic"]: c for c in by_id.values()}

    def wait_channel(self, topic: str, timeout: float = 30.0) -> dict:
        return wait_for(lambda: self.channels().get(topic), timeout, f"the bridge to advertise {topic}")

    def subscribe(self, channel: dict) -> int:
        sub_id = self.new_id()
        self.send(op="subscribe", subscriptions=[{"id": sub_id, "channelId": channel["id"]}])
        return sub_id

    def wait_message(self, sub_id: int, where=lambda stamp, payload: True, timeout: float = 30.0):
        def found():
            with self._lock:
                return next(((s, p) for i, s, p in self.messages if i == sub_id and where(s, p)), None)

        return wait_for(found, timeout, f"message data on subscription {sub_id}")

    def get_parameters(self, names: list[str]) -> dict:
        request = f"get-{self.new_id()}"
        self.send(op="getParameters", parameterNames=names, id=request)
        reply = self.wait_op("parameterValues", lambda m: m.get("id") == request)
        return {p["name"]: p["value"] for p in reply["parameters"]}

    def set_parameters(self, values: dict) -> dict:
        request = f"set-{self.new_id()}"
        self.send(op="setParameters", parameters=[{"name": k, "value": v} for k, v in values.items()], id=request)
        reply = self.wait_op("parameterValues", lambda m: m.get("id") == request)
        return {p["name"]: p["value"] for p in reply["parameters"]}

    def fetch_asset(self, uri: str) -> tuple[int, str, bytes]:
        request_id = self.new_id()
        self.send(op="fetchAsset", uri=uri, requestId=request_id)
        return wait_for(lambda: self.assets.get(request_id), 30, f"the asset {uri}")

    def close(self) -> None:
        self._stack.close()
        self._reader.join(timeout=5)


@pytest.fixture
def bridge(ros):
    # parameter_timeout: how long a node may take to answer; a loaded machine needs more than
    # a second to match a new service client (the missing-node test waits it out once)
    node = ros.add(FoxgloveBridgeNode(context=ros.context, parameter_overrides=[
        Parameter("port", value=0), Parameter("discovery_period", value=0.2),
        Parameter("parameter_timeout", value=5.0)]))
    return node


def ros_subscriptions_gone(bridge: FoxgloveBridgeNode) -> bool:
    return all(r.subscription is None for r in bridge._relays.values()) and bridge._joint_states_sub is None


@pytest.fixture
def client(bridge):
    fox = FoxgloveClient(bridge.port)
    yield fox
    fox.close()
    # the bridge lets go of its ROS subscriptions when the client leaves (and is idle again
    # before the test's executor shuts down)
    wait_for(lambda: ros_subscriptions_gone(bridge), 30, "the bridge to drop the subscriptions of a gone client")


# --------------------------------------------------------------------------- topics


def test_a_published_topic_is_a_cdr_channel_that_decodes_to_what_was_published(ros, bridge, client):
    info = client.wait_op("serverInfo")
    assert client.ws.subprotocol == "foxglove.sdk.v1"
    assert "parameters" in info["capabilities"]
    assert "assets" in info["capabilities"]

    talker = ros.node("fox_talker")
    pub = talker.create_publisher(EpisodeStats, topics.EPISODE_STATS, qos.EVENTS)
    channel = client.wait_channel(topics.EPISODE_STATS)
    assert channel["encoding"] == "cdr"
    assert channel["schemaEncoding"] == "ros2msg"
    assert channel["schemaName"] == "hilserl_ros/msg/EpisodeStats"
    assert "float32 intervention_rate" in channel["schema"] and "bool success" in channel["schema"]
    assert "MSG: std_msgs/Header" in channel["schema"]  # dependencies inlined: decodable without our code

    sub_id = client.subscribe(channel)
    ros.wait_for_subscribers(pub)  # the bridge subscribes on ROS only once a client subscribes
    sent = EpisodeStats(actor_id="actor_0", episode=7, steps=40, total_steps=1234, reward=-3.5, success=True,
                        intervention_steps=10, intervention_rate=0.25, duration_s=12.5, end_reason="success",
                        policy_version=99)
    sent.header.stamp.sec, sent.header.frame_id = 42, "base_link"
    pub.publish(sent)
    stamp, payload = client.wait_message(sub_id)
    assert stamp > 0
    assert deserialize_message(payload, EpisodeStats) == sent


def test_ros_subscriptions_exist_only_while_a_client_subscribes(ros, bridge, client):
    pub = ros.node("fox_camera").create_publisher(String, "/fox_frames", qos.SENSOR)
    channel = client.wait_channel("/fox_frames")
    assert pub.get_subscription_count() == 0  # advertised, but nobody looks: nothing is taken off DDS
    sub_id = client.subscribe(channel)
    ros.wait_for_subscribers(pub)
    (info,) = bridge.get_subscriptions_info_by_topic("/fox_frames")
    assert info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # matches the sensor publisher
    client.send(op="unsubscribe", subscriptionIds=[sub_id])
    wait_for(lambda: pub.get_subscription_count() == 0, 30, "the bridge to unsubscribe from /fox_frames")


def test_latched_topics_deliver_their_value_to_a_late_client(ros, bridge, client):
    latched = ros.node("fox_latcher").create_publisher(String, "/fox_latched", qos.LATCHED)
    latched.publish(String(data="weights v3"))  # before any client subscribes
    channel = client.wait_channel("/fox_latched")
    sub_id = client.subscribe(channel)
    _, payload = client.wait_message(sub_id)
    assert deserialize_message(payload, String).data == "weights v3"
    # and the bridge's subscription matched the publisher's durability
    (info,) = bridge.get_subscriptions_info_by_topic("/fox_latched")
    assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL


def test_a_topic_whose_publishers_are_gone_is_unadvertised(ros, bridge, client):
    talker = ros.node("fox_leaver")
    pub = talker.create_publisher(String, "/fox_leaving", 10)
    channel = client.wait_channel("/fox_leaving")
    talker.destroy_publisher(pub)
    client.wait_op("unadvertise", lambda m: channel["id"] in m["channelIds"])
    assert "/fox_leaving" not in client.channels()


def test_excluded_topics_and_types_without_a_definition_are_not_relayed(ros):
    def definitions(type_name: str) -> str:
        if type_name == "std_msgs/msg/Int32":
            raise UnknownMessageType(f"{type_name}: no .msg file found on the ament index")
        return shared_types().definition(type_name)

    bridge = ros.add(FoxgloveBridgeNode(context=ros.context, definitions=definitions, parameter_overrides=[
        Parameter("port", value=0), Parameter("discovery_period", value=0.2),
        Parameter("exclude_topics", value=["/parameter_events", "/rosout", "/fox_private/.*"])]))
    talker = ros.node("fox_mixed")
    logs = ros.probe(talker, Log, "/rosout", 100)
    talker.create_publisher(Int32, "/fox_undefined", 10)
    talker.create_publisher(String, "/fox_private/notes", 10)
    talker.create_publisher(String, "/fox_public", 10)
    client = FoxgloveClient(bridge.port)
    try:
        client.wait_channel("/fox_public")

        def skip_warnings():
            return [m for m in logs.messages if m.name == "foxglove_bridge" and "std_msgs/msg/Int32" in m.msg]

        wait_for(skip_warnings, 30, "the bridge to warn about /fox_undefined")
        passes = bridge.discovery_passes
        wait_for(lambda: bridge.discovery_passes >= passes + 3, 30, "three more looks at the graph")
        assert len(skip_warnings()) == 1  # logged once, not at every look
        advertised = client.channels()
        assert "/fox_public" in advertised  # the bridge kept going
        assert "/fox_undefined" not in advertised
        assert "/fox_private/notes" not in advertised
        assert "/parameter_events" not in advertised and "/rosout" not in advertised
    finally:
        client.close()


# --------------------------------------------------------------------------- parameters


@pytest.fixture
def human(ros):
    return ros.add(ScriptedHumanNode(context=ros.context))


def test_parameters_panel_reads_a_nodes_parameters(human, client):
    values = client.get_parameters(["/scripted_human.jitter", "/scripted_human.patience"])
    assert values == {"/scripted_human.jitter": pytest.approx(0.1), "/scripted_human.patience": 8}
    # a name the node does not have is left out, and does not hide the others
    assert client.get_parameters(["/scripted_human.jitter", "/scripted_human.no_such"]) == {
        "/scripted_human.jitter": pytest.approx(0.1)}
    everything = client.get_parameters([])  # what the panel asks for first
    assert everything["/scripted_human.takeover_steps"] == 12
    assert everything["/scripted_human.enabled"] is True
    assert everything["/foxglove_bridge.address"] == "127.0.0.1"


def test_parameters_panel_sets_values_of_the_declared_type(human, client):
    after = client.set_parameters({"/scripted_human.jitter": 0.3, "/scripted_human.patience": 20})
    assert after == {"/scripted_human.jitter": pytest.approx(0.3), "/scripted_human.patience": 20}
    assert human.params["jitter"] == pytest.approx(0.3)
    assert human.human.config.jitter == pytest.approx(0.3)  # the node's on_change ran
    assert human.params["patience"] == 20 and isinstance(human.params["patience"], int)
    # JSON sends 1.0 as 1: a double parameter still gets a double
    client.set_parameters({"/scripted_human.jitter": 1})
    assert human.params["jitter"] == 1.0 and isinstance(human.params["jitter"], float)


def test_a_refused_value_changes_nothing_and_comes_back_with_the_reason(human, bridge, client):
    client.set_parameters({"/scripted_human.jitter": 0.4})
    after = client.set_parameters({"/scripted_human.jitter": 5.0})  # range is 0..1
    assert after == {"/scripted_human.jitter": pytest.approx(0.4)}
    assert human.params["jitter"] == pytest.approx(0.4)
    status = client.wait_op("status", lambda m: "/scripted_human.jitter" in m["message"])
    assert "out of range" in status["message"]
    # a value that cannot be of the declared type never reaches the node
    after = client.set_parameters({"/scripted_human.patience": 2.5})
    assert after == {"/scripted_human.patience": 8}
    client.wait_op("status", lambda m: "/scripted_human.patience" in m["message"])
    # an undeclared parameter is refused by the node; the valid change next to it is made
    after = client.set_parameters({"/scripted_human.no_such": 1.0, "/scripted_human.takeover_steps": 5})
    assert after == {"/scripted_human.takeover_steps": 5}
    assert human.params["takeover_steps"] == 5
    status = client.wait_op("status", lambda m: "/scripted_human.no_such" in m["message"])
    assert "refused by /scripted_human" in status["message"]


def test_changes_made_elsewhere_reach_subscribed_clients(ros, human, client):
    client.send(op="subscribeParameterUpdates", parameterNames=["/scripted_human.takeover_steps"])
    client.get_parameters([])  # the subscription is handled before this reply
    setter = ros.node("fox_param_cli").create_client(SetParameters, "/scripted_human/set_parameters")
    value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=30)
    request = SetParameters.Request(parameters=[ParameterMsg(name="takeover_steps", value=value)])
    (result,) = ros.call(setter, request).results
    assert result.successful, result.reason
    update = client.wait_op("parameterValues", lambda m: "id" not in m and any(
        p["name"] == "/scripted_human.takeover_steps" and p["value"] == 30 for p in m["parameters"]))
    assert update


def test_a_missing_node_times_out_and_the_bridge_keeps_answering(human, client):
    assert client.get_parameters(["/no_such_node.gain"]) == {}
    assert client.get_parameters(["/scripted_human.patience"]) == {"/scripted_human.patience": 8}


# --------------------------------------------------------------------------- robot model


def protobuf_fields(data: bytes) -> list[tuple[int, object]]:
    """(field number, value) pairs of a protobuf message: varints, 64-bit doubles, bytes."""
    def varint(i):
        value, shift = 0, 0
        while True:
            byte = data[i]
            value |= (byte & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if byte < 0x80:
                return value, i

    fields, i = [], 0
    while i < len(data):
        key, i = varint(i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(i)
        elif wire == 1:
            value, i = struct.unpack_from("<d", data, i)[0], i + 8
        elif wire == 2:
            length, i = varint(i)
            value, i = data[i:i + length], i + length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def decode_frame_transforms(data: bytes) -> list[dict]:
    """foxglove.FrameTransforms: 1 = repeated FrameTransform {1 timestamp {1 sec, 2 nsec},
    2 parent_frame_id, 3 child_frame_id, 4 translation {x, y, z}, 5 rotation {x, y, z, w}};
    proto3 leaves zeros out."""
    out = []
    for number, raw in protobuf_fields(data):
        assert number == 1
        f = dict(protobuf_fields(raw))
        stamp = dict(protobuf_fields(f.get(1, b"")))
        translation = dict(protobuf_fields(f.get(4, b"")))
        rotation = dict(protobuf_fields(f.get(5, b"")))
        out.append({"stamp": (stamp.get(1, 0), stamp.get(2, 0)), "parent": f.get(2, b"").decode(),
                    "child": f.get(3, b"").decode(),
                    "translation": np.array([translation.get(k, 0.0) for k in (1, 2, 3)]),
                    "rotation": np.array([rotation.get(k, 0.0) for k in (1, 2, 3, 4)])})
    return out


def test_the_protobuf_reader_of_these_tests_reads_the_sdks_encoding():
    from foxglove.messages import FrameTransform, FrameTransforms, Quaternion, Timestamp, Vector3

    encoded = FrameTransforms(transforms=[FrameTransform(
        timestamp=Timestamp(5, 7), parent_frame_id="a", child_frame_id="b", translation=Vector3(x=1.5, y=0.0, z=-2.0),
        rotation=Quaternion(x=0.1, y=0.2, z=0.3, w=0.9))]).encode()
    (t,) = decode_frame_transforms(encoded)
    assert t["stamp"] == (5, 7) and (t["parent"], t["child"]) == ("a", "b")
    assert np.allclose(t["translation"], [1.5, 0, -2]) and np.allclose(t["rotation"], [0.1, 0.2, 0.3, 0.9])


def _matrix(translation, quaternion) -> np.ndarray:
    x, y, z, w = quaternion
    m = np.eye(4)
    m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    m[:3, 3] = translation
    return m


def test_robot_description_and_tf_from_joint_states_match_the_kinematics(ros, bridge, client):
    channels = {t: client.wait_channel(t) for t in (topics.ROBOT_DESCRIPTION, "/tf")}
    assert channels["/tf"]["schemaName"] == "foxglove.FrameTransforms"
    assert channels[topics.ROBOT_DESCRIPTION]["schemaName"] == "std_msgs/msg/String"
    description = client.subscribe(channels[topics.ROBOT_DESCRIPTION])
    tf = client.subscribe(channels["/tf"])
    _, payload = client.wait_message(description)
    with open(os.path.join(share_dir(), "urdf", "so101.urdf")) as fh:
        assert deserialize_message(payload, String).data == fh.read()

    states = ros.node("fox_driver").create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
    ros.wait_for_subscribers(states)
    # malformed joint states are dropped, counted, and do not stop the next good one
    bridge._on_joint_states(JointState(name=list(JOINT_NAMES), position=[math.nan] * 6))
    bridge._on_joint_states(JointState(name=list(JOINT_NAMES), position=[0.0] * 3))
    assert bridge.drops.total == 2

    q = [0.3, -0.5, 0.7, 0.2, -1.0, 0.4]
    msg = JointState(name=list(JOINT_NAMES), position=q)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 5678

    def published_state(stamp, payload):
        return decode_frame_transforms(payload)[0]["stamp"] == (1234, 5678)

    def relayed():  # best effort: publish again until one gets through, however long it takes
        states.publish(msg)
        try:
            return client.wait_message(tf, published_state, timeout=0.5)[1]
        except TimeoutError:
            return None

    payload = wait_for(relayed, 60, "the bridge to relay /tf of the published joint state")
    transforms = {t["child"]: t for t in decode_frame_transforms(payload)}
    assert transforms["shoulder_link"]["parent"] == "base_link"
    pose = np.eye(4)
    frame = topics.EE_FRAME
    while frame != topics.BASE_FRAME:  # walk the tree from the gripper frame up to the base
        link = transforms[frame]
        pose = _matrix(link["translation"], link["rotation"]) @ pose
        frame = link["parent"]
    fk = SO101Kinematics().fk(np.array(q))
    assert np.allclose(pose[:3, 3], fk.translation, atol=1e-6)
    assert np.allclose(pose[:3, :3], fk.rotation, atol=1e-6)


# --------------------------------------------------------------------------- assets


def test_meshes_are_served_and_escapes_refused(client):
    mesh_dir = lerobot_mesh_directory()
    assert mesh_dir is not None
    status, error, data = client.fetch_asset("package://hilserl_ros/urdf/meshes/base_so101_v2.stl")
    assert status == 0, error
    with open(os.path.join(mesh_dir, "base_so101_v2.stl"), "rb") as fh:
        assert data == fh.read()
    # package.xml exists two levels up from urdf/meshes/ and is still refused
    for uri in ("package://hilserl_ros/urdf/meshes/../../package.xml",
                "package://hilserl_ros/urdf/meshes/%2e%2e/%2e%2e/package.xml",
                "file://" + os.path.join(REPO_ROOT, "package.xml"),
                "package://no_such_package/x.stl"):
        status, _, data = client.fetch_asset(uri)
        assert status == 1 and data == b"", uri


def test_asset_resolver_resolves_other_packages_and_only_inside_them(tmp_path):
    resolver = hilserl_asset_resolver(share_dir())
    assert resolver("package://hilserl_ros/urdf/so101.urdf").startswith(b"<?xml")
    assert resolver("package://std_msgs/msg/String.msg") is not None  # found through the ament index
    assert resolver("package://std_msgs/../std_msgs/msg/String.msg") is None
    assert resolver("package://hilserl_ros//etc/passwd") is None
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.stl").write_bytes(b"solid")
    (tmp_path / "secret").write_bytes(b"no")
    own = AssetResolver({"pkg": str(tmp_path / "pkg")}, find_package=lambda name: None)
    assert own("package://pkg/ok.stl") == b"solid"
    assert own("package://pkg/../secret") is None
    assert own("package://pkg/") is None  # the directory itself


# --------------------------------------------------------------------------- the process


def test_the_node_process_serves_its_own_parameters_and_exits_cleanly(node_process):
    bridge = node_process("hilserl_ros.nodes.foxglove_bridge_node", "--params-file",
                          os.path.join(REPO_ROOT, "config", "foxglove.yaml"), "-p", "port:=0",
                          "-p", "parameter_timeout:=10.0")  # answering itself: not a figure under test here
    bridge.wait_output("listening on ws://127.0.0.1:", timeout=30)
    port = int(re.search(r"listening on ws://127\.0\.0\.1:(\d+)", bridge.output).group(1))
    client = FoxgloveClient(port)
    try:
        assert client.wait_op("serverInfo")["name"] == "hilserl_ros"
        # answered by the process's own parameter services through its own executor
        assert client.get_parameters(["/foxglove_bridge.exclude_topics", "/foxglove_bridge.tf_max_rate"]) == {
            "/foxglove_bridge.exclude_topics": ["/parameter_events", "/rosout"],
            "/foxglove_bridge.tf_max_rate": 30.0}
    finally:
        client.close()
    assert bridge.stop() == 0
    assert bridge.proc.poll() is not None


def test_the_parameter_file_sets_only_declared_parameters_with_their_types():
    import yaml

    from hilserl_ros.nodes.foxglove_bridge_node import PARAMS

    with open(os.path.join(REPO_ROOT, "config", "foxglove.yaml")) as fh:
        values = yaml.safe_load(fh)["foxglove_bridge"]["ros__parameters"]
    declared = {spec.name: spec for spec in PARAMS}
    assert values.keys() <= declared.keys(), values.keys() - declared.keys()
    for name, value in values.items():
        assert type(value) is type(declared[name].default), name
    # address and port are launch arguments: a value here would be one more place to change them
    assert "address" not in values and "port" not in values
    arguments = {a.name: a.default for a in TRAIN_GRAPH.arguments}
    assert arguments["foxglove_address"] == declared["address"].default == "127.0.0.1"  # localhost unless told
    assert int(arguments["foxglove_port"]) == declared["port"].default == 8765


# --------------------------------------------------------------------------- the port


def listening_socket() -> socket.socket:
    """A port taken the way another program (another run's bridge) takes it."""
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    return squatter


def free_port() -> int:
    with listening_socket() as probe:
        return probe.getsockname()[1]


def bridge_command(*launch_args: str) -> list[str]:
    """The bridge's ROS arguments as the project launcher builds them for these launch arguments."""
    args = TRAIN_GRAPH.resolve_arguments(dict(a.split(":=", 1) for a in launch_args))
    (spec,) = [s for s in TRAIN_GRAPH.active_nodes(args) if s.name == "foxglove_bridge"]
    command = node_command(spec, args, arguments=TRAIN_GRAPH.arguments)
    assert command[1:4] == ["-m", spec.module, "--ros-args"]
    return command[4:]


def test_the_port_launch_argument_is_the_port_a_client_connects_to(node_process):
    port = free_port()
    bridge = node_process("hilserl_ros.nodes.foxglove_bridge_node", *bridge_command(f"foxglove_port:={port}"),
                          "-p", "parameter_timeout:=10.0")
    bridge.wait_output(f"listening on ws://127.0.0.1:{port}", timeout=30)
    client = FoxgloveClient(port)
    try:
        assert client.wait_op("serverInfo")["name"] == "hilserl_ros"
        assert client.get_parameters(["/foxglove_bridge.port"]) == {"/foxglove_bridge.port": port}
    finally:
        client.close()
    assert bridge.stop() == 0


@pytest.mark.parametrize("argument, value", [
    ("foxglove_port", "70000"), ("foxglove_port", "-1"), ("foxglove_port", "eighty"),
    ("foxglove_address", "my laptop"),
])
def test_a_bad_port_or_address_is_refused_before_anything_starts(argument, value):
    with pytest.raises(ValueError, match=rf"^launch argument {argument}:={re.escape(value)} is not"):
        TRAIN_GRAPH.resolve_arguments({argument: value})


def test_a_busy_port_is_one_line_and_the_same_process_serves_once_it_is_free(node_process):
    with listening_socket() as squatter:
        port = squatter.getsockname()[1]
        bridge = node_process("hilserl_ros.nodes.foxglove_bridge_node", *bridge_command(f"foxglove_port:={port}"),
                              "-p", "bind_retry_period:=0.2", "--log-level", "foxglove_bridge:=debug")
        # the retries are at debug level: quiet in a normal run, countable here
        wait_for(lambda: bridge.output.count("still unavailable") >= 3, 60,
                 f"three quiet retries of the busy port:\n{bridge.output}")
        assert bridge.proc.poll() is None  # up, not crashed into a respawn
    bridge.wait_output(f"listening on ws://127.0.0.1:{port}", timeout=60)
    client = FoxgloveClient(port)
    try:
        assert client.wait_op("serverInfo")["name"] == "hilserl_ros"
    finally:
        client.close()
    said = [line for line in bridge.lines if "NOT serving" in line]
    assert len(said) == 1, bridge.output
    assert "WARN" in said[0] and f"port {port} on 127.0.0.1 is in use" in said[0]
    assert "foxglove_port:=" in said[0]  # how to choose another
    assert "Traceback" not in bridge.output and "ERROR" not in bridge.output
    assert bridge.stop() == 0


def test_a_bridge_that_binds_late_serves_the_topics_it_found_meanwhile(ros):
    with listening_socket() as squatter:
        port = squatter.getsockname()[1]
        bridge = ros.add(FoxgloveBridgeNode(context=ros.context, parameter_overrides=[
            Parameter("port", value=port), Parameter("discovery_period", value=0.2),
            Parameter("bind_retry_period", value=0.2)]))
        assert bridge.server is None and bridge.port is None
        talker = ros.node("fox_early_talker")
        pub = talker.create_publisher(String, "/fox_early", 10)
        wait_for(lambda: "/fox_early" in bridge._relays, 30, "the bridge to find /fox_early while not serving")
    wait_for(lambda: bridge.port == port, 60, f"the bridge to take port {port} once it is free")
    client = FoxgloveClient(port)
    try:
        sub_id = client.subscribe(client.wait_channel("/fox_early"))
        ros.wait_for_subscribers(pub, timeout=30)  # the bridge subscribes once a client does
        pub.publish(String(data="late but here"))
        _, payload = client.wait_message(sub_id)
        assert deserialize_message(payload, String).data == "late but here"
    finally:
        client.close()


@pytest.mark.parametrize("error", [
    "FoxgloveError: Failed to bind port: Address already in use (os error 98)",
    "FoxgloveError: Failed to bind port: Cannot assign requested address (os error 99)",
])
def test_a_bind_failure_is_one_line_saying_which_launch_argument_changes_it(error):
    line = bind_failure_message("127.0.0.1", 8765, error, 10.0)
    assert "\n" not in line and "8765" in line
    if "in use" in error:
        assert "port 8765 on 127.0.0.1 is in use" in line and "foxglove_port:=8766" in line
    else:
        assert "Cannot assign requested address" in line and "foxglove_address:=" in line
        assert "FoxgloveError" not in line


def test_the_sdk_reports_a_busy_port_in_the_words_the_bridge_looks_for():
    import foxglove

    from hilserl_ros.foxglove_bridge import port_in_use

    with listening_socket() as squatter:
        with pytest.raises(RuntimeError) as caught:
            foxglove.start_server(host="127.0.0.1", port=squatter.getsockname()[1], context=foxglove.Context())
    assert port_in_use(str(caught.value)), caught.value


# --------------------------------------------------------------------------- core pieces


def test_parameter_names_follow_the_ros_foxglove_bridge_convention():
    assert split_parameter_name("/learner.target_entropy") == ("/learner", "target_entropy")
    assert split_parameter_name("/ns/sim.qos_overrides./clock.depth") == ("/ns/sim", "qos_overrides./clock.depth")
    for bad in ("learner.x", "/learner", "/learner.", "/.x"):
        with pytest.raises(ValueError):
            split_parameter_name(bad)


def test_values_convert_to_the_declared_ros_type():
    assert native_to_ros(2, ParameterType.PARAMETER_DOUBLE).double_value == 2.0
    assert native_to_ros(3.0, ParameterType.PARAMETER_INTEGER).integer_value == 3
    assert native_to_ros([1, 2.5], ParameterType.PARAMETER_DOUBLE_ARRAY).double_array_value.tolist() == [1.0, 2.5]
    assert native_to_ros(["a"], ParameterType.PARAMETER_NOT_SET).type == ParameterType.PARAMETER_STRING_ARRAY
    assert native_to_ros(7, ParameterType.PARAMETER_NOT_SET).type == ParameterType.PARAMETER_INTEGER
    for value, declared in ((2.5, ParameterType.PARAMETER_INTEGER), (True, ParameterType.PARAMETER_INTEGER),
                            ("1", ParameterType.PARAMETER_DOUBLE), (1, ParameterType.PARAMETER_BOOL),
                            (None, ParameterType.PARAMETER_DOUBLE), ([1, "a"], ParameterType.PARAMETER_NOT_SET)):
        with pytest.raises(ValueError):
            native_to_ros(value, declared)
    double = to_foxglove_parameter("/n.x", ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=1.0))
    assert double.get_value() == 1.0 and isinstance(double.get_value(), float)
    strings = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["a", "b"])
    assert to_foxglove_parameter("/n.s", strings).get_value() == ["a", "b"]
    assert to_foxglove_parameter("/n.u", ParameterValue(type=ParameterType.PARAMETER_NOT_SET)) is None


def test_subscription_qos_matches_every_publisher():
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sensor = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
    assert qos.matching_publishers([reliable]).reliability == ReliabilityPolicy.RELIABLE
    assert qos.matching_publishers([reliable, sensor]).reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.matching_publishers([latched]).durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos.matching_publishers([latched, reliable]).durability == DurabilityPolicy.VOLATILE


def test_topic_filters_match_whole_names():
    f = TopicFilter([".*"], ["/parameter_events", "/rosout"])
    assert f.accepts("/joint_states") and not f.accepts("/rosout")
    assert TopicFilter(["/learner/.*"]).accepts("/learner/stats")
    assert not TopicFilter(["/learner"]).accepts("/learner/stats")
    with pytest.raises(ValueError):
        TopicFilter(["("])


# --------------------------------------------------------------------------- the layout


def _panels(tree) -> list[str]:
    if isinstance(tree, str):
        return [tree]
    return _panels(tree["first"]) + _panels(tree["second"])


def _msg_fields(name: str) -> set[str]:
    with open(os.path.join(REPO_ROOT, "msg", f"{name}.msg")) as fh:
        lines = [line.split("#")[0].split() for line in fh]
    return {parts[1] for parts in lines if len(parts) >= 2 and "=" not in parts[1]}


PLOTTED_TYPES = {topics.LEARNER_STATS: "LearnerStats", topics.EPISODE_STATS: "EpisodeStats",
                 topics.REWARD_PREDICTION: "SuccessPrediction"}


def test_layout_is_a_foxglove_layout_of_the_graphs_topics():
    with open(LAYOUT) as fh:
        layout = json.load(fh)
    assert {"configById", "layout", "globalVariables", "userNodes", "playbackConfig"} <= layout.keys()
    configs = layout["configById"]
    assert sorted(_panels(layout["layout"])) == sorted(configs)  # every panel placed, none missing
    kinds = {panel_id.split("!")[0] for panel_id in configs}
    assert kinds == {"3D", "Image", "Plot", "Parameters"}

    graph_topics = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str) and v.startswith("/")}
    referenced = []
    plotted: dict[str, set[str]] = {}
    for panel_id, config in configs.items():
        kind = panel_id.split("!")[0]
        if kind == "Plot":
            for series in config["paths"]:
                topic, _, field = series["value"].partition(".")
                referenced.append(topic)
                plotted.setdefault(panel_id, set()).add(series["value"])
                assert field in _msg_fields(PLOTTED_TYPES[topic]), series["value"]
        elif kind == "Image":
            referenced.append(config["imageMode"]["imageTopic"])
            assert config["imageMode"]["imageTopic"] in (topics.CAMERA_IMAGE, topics.POLICY_VIEW_FRONT,
                                                         topics.POLICY_VIEW_WRIST)
        elif kind == "3D":
            assert config["followTf"] == topics.BASE_FRAME
            referenced += list(config["topics"])
            assert {topics.EE_POSE, topics.WORKSPACE_MARKERS} <= set(config["topics"])
            (urdf,) = [layer for layer in config["layers"].values() if layer["layerId"] == "foxglove.Urdf"]
            assert (urdf["sourceType"], urdf["topic"]) == ("topic", topics.ROBOT_DESCRIPTION)
            referenced.append(urdf["topic"])
    assert set(referenced) <= graph_topics, set(referenced) - graph_topics
    assert {"/learner/stats.alpha", "/learner/stats.entropy", "/learner/stats.target_entropy"} in plotted.values()
    assert {"/episode_stats.reward"} in plotted.values()
    assert {"/episode_stats.success", "/episode_stats.intervention_rate", "/reward_classifier/prediction.probability",
            "/reward_classifier/prediction.threshold"} in plotted.values()
