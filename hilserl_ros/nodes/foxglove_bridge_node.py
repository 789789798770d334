"""Foxglove bridge node (/foxglove_bridge): the Foxglove app's live view of the running graph,
over the Foxglove WebSocket protocol (foxglove-sdk's server), on localhost by default.

- Topics: every topic matching ``topics`` and not ``exclude_topics`` is advertised as a
  channel with message encoding ``cdr`` and its full ``ros2msg`` definition, so any message
  type works with no per-type code. The graph is looked at every ``discovery_period``; a
  topic without publishers is unadvertised. The ROS subscription (raw: serialized CDR
  straight to the client) exists only while a Foxglove client subscribes to the channel, so
  camera frames and transitions cost nothing while nobody looks; its QoS is chosen from the
  publishers' (best effort if any is, transient local if all are, so latched topics such as
  /policy_weights show their value as soon as a client subscribes: for each new client the
  latched topic is subscribed afresh, which repeats the value to the clients already there).
- Parameters: the Parameters panel reads and sets every node's ROS parameters through the
  nodes' own parameter services. Names follow the official ros-foxglove-bridge:
  ``/node_name.param_name`` (``/learner.target_entropy``). A value the node refuses is
  logged with the node's reason and reported to the client; the panel then shows the value
  in force.
- Robot model: with no ROS publisher on /tf (robot_state_publisher is not part of this
  install), ``robot_model`` makes the bridge serve the URDF on /robot_description and the
  link transforms computed from /joint_states (Pinocchio) on /tf, and answer Foxglove's
  mesh requests (package://hilserl_ros/urdf/meshes/...), so the 3D panel shows the arm.

Bad input (malformed joint states, failing callbacks, types without an installed
definition) is counted and logged once per kind; the bridge keeps going. So does a port it
cannot bind (another program has it): one line says so and how to choose another port, and the
node stays up without serving, trying the port again every ``bind_retry_period``; exiting
instead would only have it respawned into the same busy port, over and over.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import foxglove
from foxglove import Channel, Schema, StatusLevel
from foxglove.channels import FrameTransformsChannel
from foxglove.websocket import Capability, ServerListener
from rcl_interfaces.msg import Parameter as RosParameter
from rcl_interfaces.msg import ParameterEvent, ParameterType
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_parameter_events
from sensor_msgs.msg import JointState

from hilserl_ros import topics
from hilserl_ros.foxglove_bridge import (
    RobotModel,
    bind_failure_message,
    foxglove_parameter_name,
    frame_transforms_message,
    hilserl_asset_resolver,
    native_to_ros,
    split_parameter_name,
    string_message_cdr,
    to_foxglove_parameter,
    ws_url,
)
from hilserl_ros.graph import share_dir
from hilserl_ros.recording.types import message_class, shared_types
from hilserl_ros.ros import qos
from hilserl_ros.ros.topic_filter import TopicFilter, regex_problem
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter

TF = "/tf"  # tf2_msgs/TFMessage on a full ROS install; here foxglove.FrameTransforms when we compute it
STRING_TYPE = "std_msgs/msg/String"

PARAMS = [
    ParamSpec("address", "127.0.0.1", "interface the WebSocket server binds to (127.0.0.1: this machine only; "
              "0.0.0.0 exposes the graph's parameters to the network); launch argument foxglove_address",
              read_only=True),
    ParamSpec("port", 8765, "WebSocket port (0 = any free port; the bound port is logged); launch argument "
              "foxglove_port", min=0, max=65535, read_only=True),
    ParamSpec("bind_retry_period", 10.0, "seconds between tries to bind a port that was in use", min=0.1,
              max=3600.0, unit="s", read_only=True),
    ParamSpec("topics", [".*"], "regular expressions (whole topic name) of the topics to relay",
              validator=regex_problem),
    ParamSpec("exclude_topics", ["/parameter_events", "/rosout"], "... except the topics matching these",
              validator=regex_problem),
    ParamSpec("discovery_period", 1.0, "seconds between looks at the ROS graph for new and gone topics",
              min=0.1, max=60.0, unit="s", read_only=True),
    ParamSpec("robot_model", True, "when nothing publishes /tf: serve the URDF on /robot_description and link "
              "transforms from /joint_states on /tf"),
    ParamSpec("tf_max_rate", 30.0, "most link-transform updates per second sent to Foxglove", min=1.0,
              max=1000.0, unit="Hz"),
    ParamSpec("parameter_timeout", 2.0, "how long a node may take to answer a parameter request", min=0.1,
              max=30.0, unit="s"),
]


@dataclass
class Relay:
    """One ROS topic relayed to one Foxglove channel."""

    topic: str
    type_name: str
    msg_class: Any
    channel: Channel
    subscription: Any = None  # only while a Foxglove client subscribes
    qos: QoSProfile | None = None


class FoxgloveBridgeNode(Node):
    def __init__(self, *, definitions: Callable[[str], str] | None = None, **node_options):
        """``definitions`` maps a type name to its full ros2msg text (default: the installed
        .msg files through hilserl_ros.recording.types); it raises for an unknown type."""
        super().__init__("foxglove_bridge", **node_options)
        self.params = declare(self, PARAMS)
        self.drops = DropCounter(self.get_logger(), "message")
        self.faults = DropCounter(self.get_logger(), "callback")
        self._definition = definitions or shared_types().definition
        self._closed = False
        self.discovery_passes = 0

        # Shared with the SDK's thread (listener callbacks): who watches which channel.
        self._lock = threading.Lock()
        self._watchers: dict[int, set[int]] = {}  # channel id -> Foxglove client ids
        self._joined: set[int] = set()  # channels a client subscribed to since the last sync
        self._watched_parameters: set[str] = set()

        # Executor side only: discovery, subscription sync and joint states share the default
        # (mutually exclusive) callback group, so they never run at the same time.
        self._relays: dict[str, Relay] = {}
        self._unsupported: set[str] = set()  # types without a definition, warned about once
        self._warned: set[str] = set()
        self._model: RobotModel | None = None
        self._model_failed = False
        self._tf_channel: FrameTransformsChannel | None = None
        self._description_channel: Channel | None = None
        self._joint_states_sub = None
        self._description_cdr = b""
        self._last_tf = 0.0

        self._relay_group = ReentrantCallbackGroup()  # channel.log is thread-safe: relay in parallel
        self._sync_wake = self.create_guard_condition(self._sync_subscriptions)
        self.parameters = ParameterGateway(self, ReentrantCallbackGroup(), self._report)

        # Channels live in this context whether or not the server is up: a server that binds
        # late advertises them all to its clients.
        self.foxglove_context = foxglove.Context()
        self.server = None  # set once bound; read by the SDK's thread too (one assignment)
        self.port: int | None = None
        self._bind_error: str | None = None
        self._bind_timer = None
        self._server_lock = threading.Lock()  # a retry never starts a server that close() would miss
        if not self._serve():
            self._bind_timer = self.create_timer(self.params["bind_retry_period"], self._retry_bind)

        self.create_subscription(ParameterEvent, "/parameter_events", self._on_parameter_event,
                                 qos_profile_parameter_events)
        self._discover()
        self._discovery_timer = self.create_timer(self.params["discovery_period"], self._discover)

    # ------------------------------------------------------------------ the server
    def _serve(self) -> bool:
        """Starts the WebSocket server; False (logged once per reason) when it cannot bind."""
        address, port = self.params["address"], self.params["port"]
        try:
            server = foxglove.start_server(
                name="hilserl_ros", host=address, port=port, capabilities=[Capability.Parameters],
                server_listener=_Listener(self), asset_handler=hilserl_asset_resolver(share_dir()),
                context=self.foxglove_context)
        except RuntimeError as exc:  # the SDK's bind errors (in use, no such address)
            error = str(exc)
            if error != self._bind_error:  # the same failure every retry: said once
                self._bind_error = error
                self.get_logger().warning(
                    bind_failure_message(address, port, error, self.params["bind_retry_period"]))
            else:
                self.get_logger().debug(f"{address}:{port} still unavailable: {error}")
            return False
        self.server, self.port = server, server.port
        self.get_logger().info(f"Foxglove bridge listening on {ws_url(address, self.port)}")
        return True

    def _retry_bind(self) -> None:
        with self._server_lock:
            if self._closed or self._serve():
                self._bind_timer.cancel()

    # ------------------------------------------------------------------ discovery
    def _discover(self) -> None:
        self.discovery_passes += 1
        try:
            self._update_robot_model()
            self._update_relays()
            self._sync_subscriptions()
        except Exception as exc:
            self._fault("graph discovery", exc)

    def _update_relays(self) -> None:
        topic_filter = TopicFilter(self.params["topics"], self.params["exclude_topics"])
        served_by_us = {TF} if self._tf_channel else set()
        if self._description_channel:
            served_by_us.add(topics.ROBOT_DESCRIPTION)
        wanted: dict[str, str] = {}
        for topic, types in self.get_topic_names_and_types():
            if topic in served_by_us or not topic_filter.accepts(topic):
                continue
            if len(types) != 1:
                self._skip_once(f"{topic}:several", f"not relaying {topic}: it carries several types ({types})")
                continue
            if self.count_publishers(topic) == 0:
                continue  # only subscribers left (ours included): nothing to relay
            wanted[topic] = types[0]
        for topic in [t for t, relay in self._relays.items() if wanted.get(t) != relay.type_name]:
            self._remove_relay(self._relays.pop(topic))
        for topic, type_name in wanted.items():
            if topic not in self._relays:
                self._add_relay(topic, type_name)
        for relay in self._relays.values():  # a best-effort publisher may have joined a reliable topic
            if relay.subscription is not None:
                fresh = self._publisher_qos(relay.topic)
                if (fresh.reliability, fresh.durability) != (relay.qos.reliability, relay.qos.durability):
                    self._subscribe(relay)

    def _add_relay(self, topic: str, type_name: str) -> None:
        if type_name in self._unsupported:
            return
        try:
            definition = self._definition(type_name)
            msg_class = message_class(type_name)
        except Exception as exc:  # no .msg or no Python module for it: log once, skip the type
            self._unsupported.add(type_name)
            self.get_logger().warning(f"not relaying {topic}: no installed definition of {type_name} ({exc})")
            return
        channel = Channel(topic, schema=Schema(name=type_name, encoding="ros2msg", data=definition.encode()),
                          message_encoding="cdr", context=self.foxglove_context)
        self._relays[topic] = Relay(topic, type_name, msg_class, channel)

    def _remove_relay(self, relay: Relay) -> None:
        if relay.subscription is not None:
            self.destroy_subscription(relay.subscription)
            relay.subscription = None
        self._close_channel(relay.channel)

    def _close_channel(self, channel) -> None:
        with self._lock:
            self._watchers.pop(channel.id(), None)
            self._joined.discard(channel.id())
        channel.close()  # unadvertises it; the SDK may call on_unsubscribe from here: lock released

    def _publisher_qos(self, topic: str) -> QoSProfile:
        # a viewer wants the latest messages, not a backlog: shallow queue
        return qos.matching_publishers([info.qos_profile for info in self.get_publishers_info_by_topic(topic)],
                                       depth=10)

    # ------------------------------------------------------------------ client subscriptions
    def _client_subscribed(self, client_id: int, channel_id: int) -> None:
        with self._lock:
            self._watchers.setdefault(channel_id, set()).add(client_id)
            self._joined.add(channel_id)
        self._wake()

    def _client_unsubscribed(self, client_id: int, channel_id: int) -> None:
        with self._lock:
            self._watchers.get(channel_id, set()).discard(client_id)
        self._wake()

    def _wake(self) -> None:
        # ROS entities are made and destroyed on the executor (in _sync_subscriptions), not on
        # the SDK's thread that reports the subscription
        if not self._closed:
            self._sync_wake.trigger()

    def _sync_subscriptions(self) -> None:
        """ROS subscriptions follow the Foxglove clients' ones."""
        try:
            with self._lock:
                watched = {cid for cid, clients in self._watchers.items() if clients}
                joined, self._joined = self._joined, set()
            for relay in self._relays.values():
                cid = relay.channel.id()
                if cid in watched and (relay.subscription is None or (cid in joined and qos.is_latched(relay.qos))):
                    # a latched topic is subscribed afresh for a newly joined client, so the
                    # publisher's durability delivers the last value again
                    self._subscribe(relay)
                elif cid not in watched and relay.subscription is not None:
                    self.destroy_subscription(relay.subscription)
                    relay.subscription = None
            self._sync_robot_model(watched, joined)
        except Exception as exc:
            self._fault("subscription sync", exc)

    def _subscribe(self, relay: Relay) -> None:
        if relay.subscription is not None:
            self.destroy_subscription(relay.subscription)
        relay.qos = self._publisher_qos(relay.topic)
        channel, topic = relay.channel, relay.topic
        relay.subscription = self.create_subscription(
            relay.msg_class, topic, lambda data: self._relay_message(channel, topic, data), relay.qos,
            raw=True, callback_group=self._relay_group)

    def _relay_message(self, channel: Channel, topic: str, data: bytes) -> None:
        try:
            channel.log(data, log_time=time.time_ns())
        except Exception as exc:
            self._fault(f"relaying {topic}", exc)

    # ------------------------------------------------------------------ robot model
    def _update_robot_model(self) -> None:
        serve = bool(self.params["robot_model"]) and self.count_publishers(TF) == 0 and self._load_model()
        if serve and self._tf_channel is None:
            self._tf_channel = FrameTransformsChannel(TF, context=self.foxglove_context)
            self.get_logger().info("nothing publishes /tf: serving the URDF's link transforms from /joint_states")
        elif not serve and self._tf_channel is not None:
            self._close_channel(self._tf_channel)
            self._tf_channel = None
            if self._joint_states_sub is not None:
                self.destroy_subscription(self._joint_states_sub)
                self._joint_states_sub = None
        describe = serve and self.count_publishers(topics.ROBOT_DESCRIPTION) == 0
        if describe and self._description_channel is None:
            definition = self._definition(STRING_TYPE)
            self._description_channel = Channel(
                topics.ROBOT_DESCRIPTION, schema=Schema(name=STRING_TYPE, encoding="ros2msg", data=definition.encode()),
                message_encoding="cdr", context=self.foxglove_context)
        elif not describe and self._description_channel is not None:
            self._close_channel(self._description_channel)
            self._description_channel = None

    def _load_model(self) -> bool:
        if self._model is None and not self._model_failed:
            path = os.path.join(share_dir(), "urdf", "so101.urdf")
            try:
                self._model = RobotModel(path)
                self._description_cdr = string_message_cdr(self._model.urdf)
            except Exception as exc:
                self._model_failed = True
                self.get_logger().error(f"robot model off: cannot load {path}: {exc}")
        return self._model is not None

    def _sync_robot_model(self, watched: set[int], joined: set[int]) -> None:
        if self._description_channel is not None and self._description_channel.id() in joined:
            # a WebSocket channel keeps no last message: each newcomer gets the URDF now
            self._description_channel.log(self._description_cdr, log_time=time.time_ns())
        tf = self._tf_channel
        if tf is not None and tf.id() in watched and self._joint_states_sub is None:
            self._joint_states_sub = self.create_subscription(
                JointState, topics.JOINT_STATES, self._on_joint_states, qos.SENSOR)
        elif (tf is None or tf.id() not in watched) and self._joint_states_sub is not None:
            self.destroy_subscription(self._joint_states_sub)
            self._joint_states_sub = None
        if tf is not None and tf.id() in joined:
            self._log_transforms(time.time_ns())  # the last known pose, before the next joint state

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            try:
                self._model.set_joints(list(msg.name), list(msg.position))
            except ValueError as exc:  # malformed state: dropped, the last good pose stays
                self.drops.drop(str(exc))
                return
            now = time.monotonic()
            if now - self._last_tf < 1.0 / self.params["tf_max_rate"]:
                return
            self._last_tf = now
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self._log_transforms(stamp or time.time_ns())
        except Exception as exc:
            self._fault("link transforms", exc)

    def _log_transforms(self, stamp_ns: int) -> None:
        channel = self._tf_channel
        if channel is not None and self._model is not None:
            channel.log(frame_transforms_message(self._model.transforms(), stamp_ns), log_time=time.time_ns())

    # ------------------------------------------------------------------ parameters
    def _parameters_subscribed(self, names: list[str], subscribed: bool) -> None:
        with self._lock:
            if subscribed:
                self._watched_parameters.update(names)
            else:
                self._watched_parameters.difference_update(names)

    def _on_parameter_event(self, event: ParameterEvent) -> None:
        """Changes made elsewhere (ros2 param set, another client) reach the open panels."""
        try:
            with self._lock:
                watched = set(self._watched_parameters)
            if not watched or self._closed:
                return
            changed = []
            for param in [*event.new_parameters, *event.changed_parameters]:
                name = foxglove_parameter_name(event.node, param.name)
                if name in watched:
                    value = to_foxglove_parameter(name, param.value)
                    if value is not None:
                        changed.append(value)
            server = self.server
            if changed and server is not None:
                server.publish_parameter_values(changed)
        except Exception as exc:
            self._fault("parameter event", exc)

    def _report(self, message: str) -> None:
        """A refused parameter change: in our log and in the client's problem list."""
        self.get_logger().warning(message)
        server = self.server
        if not self._closed and server is not None:
            server.publish_status(message, StatusLevel.Warning)

    # ------------------------------------------------------------------ faults, shutdown
    def _skip_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(message)

    def _fault(self, where: str, exc: Exception) -> None:
        """Count a failed callback; the first of each kind is logged with its message."""
        kind = f"{where}: {type(exc).__name__}"
        if self.faults.by_reason[kind] == 0:
            self.get_logger().error(f"{where} failed: {exc!r}")
        self.faults.drop(kind)

    def close(self) -> None:
        with self._server_lock:
            if self._closed:
                return
            self._closed = True
            self._discovery_timer.cancel()  # no more channels or subscriptions from here on
            if self._bind_timer is not None:
                self._bind_timer.cancel()
            if self.server is not None:
                self.server.stop()


class ParameterGateway:
    """Foxglove's getParameters/setParameters answered by the nodes' parameter services
    (rcl_interfaces list/get/set_parameters), as ``ros2 param`` does.

    Called on the SDK's listener thread: the requests go out there and their replies are
    handled by the node's executor (a reentrant group), which this thread only waits on, with
    ``parameter_timeout`` so a dead node cannot hang the bridge. The SDK handles its clients'
    requests one at a time, so nodes are asked in parallel, not one after the other.
    """

    def __init__(self, node: FoxgloveBridgeNode, callback_group, report: Callable[[str], None]):
        self.node = node
        self.callback_group = callback_group
        self.report = report
        self._clients: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.failures = DropCounter(node.get_logger(), "parameter request")

    @property
    def timeout(self) -> float:
        return float(self.node.params["parameter_timeout"])

    def get(self, names: list[str]) -> list[foxglove.Parameter]:
        """The parameters named (``/node.param``), or every node's parameters for no names;
        names no node has are left out."""
        deadline = time.monotonic() + self.timeout
        if names:
            wanted = self._by_node(names)
        else:
            nodes = self.nodes_with_parameters()
            listed = self._call_all({n: (self._client(n, "list"), ListParameters.Request(depth=0)) for n in nodes},
                                    deadline)
            wanted = {n: list(reply.result.names) for n, reply in listed.items()}
        out = []
        for node_name, values in self._read(wanted, deadline).items():
            for param, value in values.items():
                converted = to_foxglove_parameter(foxglove_parameter_name(node_name, param), value)
                if converted is not None:
                    out.append(converted)
        return out

    def set(self, parameters: list[foxglove.Parameter]) -> list[foxglove.Parameter]:
        """Sets each value as the type the node declared; returns the values in force after."""
        deadline = time.monotonic() + self.timeout
        requested = {p.name: p.get_value() for p in parameters}
        by_node = self._by_node(list(requested))
        # JSON does not keep 2.0 apart from 2: read the declared types to convert to them
        current = self._read(by_node, deadline)
        requests: dict[str, tuple[Any, SetParameters.Request]] = {}
        sent: dict[str, list[str]] = {}
        for node_name, params in by_node.items():
            if node_name not in current:
                self.report(f"{node_name} did not answer: {', '.join(params)} not set")
                continue
            msgs = []
            for param in params:
                name = foxglove_parameter_name(node_name, param)
                declared = current[node_name].get(param)
                try:
                    value = native_to_ros(requested[name], ParameterType.PARAMETER_NOT_SET if declared is None
                                          else declared.type)
                except ValueError as exc:
                    self.report(f"{name} = {requested[name]!r} not set: {exc}")
                    continue
                msgs.append(RosParameter(name=param, value=value))
                sent.setdefault(node_name, []).append(param)
            if msgs:
                requests[node_name] = (self._client(node_name, "set"), SetParameters.Request(parameters=msgs))
        for node_name, reply in self._call_all(requests, deadline).items():
            for param, result in zip(sent[node_name], reply.results):
                if not result.successful:
                    name = foxglove_parameter_name(node_name, param)
                    self.report(f"{name} = {requested[name]!r} refused by {node_name}: {result.reason}")
        return self.get(list(requested))

    def _read(self, wanted: dict[str, list[str]], deadline: float) -> dict[str, dict[str, Any]]:
        """Current values (rcl ParameterValue) by node and parameter name."""
        wanted = {n: list(ps) for n, ps in wanted.items()}
        calls = {n: (self._client(n, "get"), GetParameters.Request(names=ps)) for n, ps in wanted.items() if ps}
        replies = self._call_all(calls, deadline)
        # a node answers a request naming one undeclared parameter with no values at all:
        # ask those nodes again for the names they have
        short = [n for n, reply in replies.items() if len(reply.values) != len(wanted[n])]
        if short:
            listed = self._call_all({n: (self._client(n, "list"), ListParameters.Request(depth=0)) for n in short},
                                    deadline)
            for node_name in short:
                del replies[node_name]
                if node_name in listed:
                    known = set(listed[node_name].result.names)
                    wanted[node_name] = [p for p in wanted[node_name] if p in known]
            retry = {n: (self._client(n, "get"), GetParameters.Request(names=wanted[n]))
                     for n in short if n in listed and wanted[n]}
            replies.update(self._call_all(retry, deadline))
        return {n: dict(zip(wanted[n], reply.values)) for n, reply in replies.items()
                if len(reply.values) == len(wanted[n])}

    def nodes_with_parameters(self) -> list[str]:
        """Fully qualified names of the nodes that serve parameters (hidden nodes left out)."""
        found = []
        for name, namespace in self.node.get_node_names_and_namespaces():
            fqn = namespace.rstrip("/") + "/" + name
            if name.startswith("_") or fqn in found:
                continue
            services = {s for s, _ in self.node.get_service_names_and_types_by_node(name, namespace)}
            if f"{fqn}/get_parameters" in services:
                found.append(fqn)
        return found

    def _by_node(self, names: list[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name in names:
            try:
                node_name, param = split_parameter_name(name)
            except ValueError as exc:
                self.failures.drop(str(exc))
                continue
            grouped.setdefault(node_name, []).append(param)
        return grouped

    def _client(self, node_name: str, which: str):
        """The node's list/get/set parameter service client, made on first use and kept."""
        with self._lock:
            clients = self._clients.get(node_name)
            if clients is None:
                clients = {
                    which: self.node.create_client(srv, f"{node_name}/{which}_parameters",
                                                   callback_group=self.callback_group)
                    for which, srv in (("list", ListParameters), ("get", GetParameters), ("set", SetParameters))
                }
                self._clients[node_name] = clients
        return clients[which]

    def _call_all(self, calls: dict[str, tuple[Any, Any]], deadline: float) -> dict[str, Any]:
        """Sends every request, then waits for the replies until ``deadline``; a node that
        does not answer in time is left out of the result (and logged once)."""
        pending = {}
        for node_name, (client, request) in calls.items():
            if client.service_is_ready() or client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
                pending[node_name] = (client, client.call_async(request))
            else:
                self.failures.drop(f"{client.service_name} not available")
        while any(not future.done() for _, future in pending.values()) and time.monotonic() < deadline:
            time.sleep(0.005)  # the executor completes the futures; this thread is not one of its
        replies = {}
        for node_name, (client, future) in pending.items():
            if future.done() and future.result() is not None:
                replies[node_name] = future.result()
            else:
                client.remove_pending_request(future)
                self.failures.drop(f"{client.service_name} did not answer in time")
        return replies


class _Listener(ServerListener):
    """The SDK's callbacks (on its own thread), handed to the node; never raises into the SDK."""

    def __init__(self, bridge: FoxgloveBridgeNode):
        self.bridge = bridge

    def _guarded(self, where: str, call: Callable[[], Any], fallback: Any) -> Any:
        try:
            return call()
        except Exception as exc:
            self.bridge._fault(where, exc)
            return fallback

    def on_subscribe(self, client, channel) -> None:
        self._guarded("subscribe", lambda: self.bridge._client_subscribed(client.id, channel.id), None)

    def on_unsubscribe(self, client, channel) -> None:
        self._guarded("unsubscribe", lambda: self.bridge._client_unsubscribed(client.id, channel.id), None)

    def on_get_parameters(self, client, param_names: list[str], request_id: str | None = None):
        return self._guarded("getParameters", lambda: self.bridge.parameters.get(list(param_names)), [])

    def on_set_parameters(self, client, parameters, request_id: str | None = None):
        return self._guarded("setParameters", lambda: self.bridge.parameters.set(list(parameters)), [])

    def on_parameters_subscribe(self, param_names: list[str]) -> None:
        self._guarded("subscribeParameterUpdates",
                      lambda: self.bridge._parameters_subscribed(list(param_names), True), None)

    def on_parameters_unsubscribe(self, param_names: list[str]) -> None:
        self._guarded("unsubscribeParameterUpdates",
                      lambda: self.bridge._parameters_subscribed(list(param_names), False), None)


def main():
    # threads: relays, the robot model and the parameter services' replies run side by side
    return run_node(FoxgloveBridgeNode, threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
