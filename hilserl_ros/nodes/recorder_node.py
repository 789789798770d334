"""rosbag2 recorder node (/recorder): keeps the run as an MCAP bag directory.

What ``ros2 bag record -s mcap`` does, on the pip-installed ROS 2 where rosbag2 is absent: ``discovery_rate``
times a second it looks at the graph, subscribes to each new topic that matches
``topics`` and not ``exclude_topics`` with the QoS its publishers offer (best effort sensors,
latched weights), and writes each message's CDR bytes as received, stamped with the receive
time. Parameter changes (/parameter_events) and logs (/rosout) are recorded too, so a bag
shows when a knob was turned. On shutdown the bag is closed (summary and metadata.yaml).
Topics whose type is not installed are named once and skipped.

    ros2 run hilserl_ros recorder_node --ros-args -p bag_dir:=runs -p topics:="['/joint_states', '/transitions']"
"""
from __future__ import annotations

import os
import time

from rclpy.node import Node

from hilserl_ros.recording.bag import BagWriter, default_bag_name, offered_qos
from hilserl_ros.recording.types import UnknownMessageType, message_class
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.topic_filter import TopicFilter, regex_problem
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter


PARAMS = [
    ParamSpec("bag_dir", "runs", "directory that receives the bag directory", read_only=True),
    ParamSpec("bag_name", "", "bag directory name (empty: run_<date>_<time>)", read_only=True),
    ParamSpec("topics", [".*"], "record topics matching (whole name) any of these regular expressions", validator=regex_problem),
    ParamSpec("exclude_topics", ["^$"], "... except those matching any of these", validator=regex_problem),
    ParamSpec("discovery_rate", 2.0, "looks for new topics per second", min=0.01, max=20.0, unit="Hz"),
    ParamSpec("known_topics", ["^$"], "topic=type pairs subscribed at start, before any publisher exists, so "
              "the first message of a reliable topic (the first transition) is not missed; reliable QoS",
              read_only=True, validator=lambda v: next((f"{e!r} is not topic=package/msg/Type" for e in v
                                                        if e != "^$" and "=" not in e), None)),
    ParamSpec("paused", False, "while true, received messages are not written"),
]


class RecorderNode(Node):
    def __init__(self, **node_options):
        super().__init__("recorder", **node_options)
        self.params = declare(self, PARAMS)
        name = self.params["bag_name"] or default_bag_name()
        self.path = os.path.abspath(os.path.join(self.params["bag_dir"], name))
        self.bag = BagWriter(self.path)
        self.errors = DropCounter(self.get_logger(), "topic")
        self.recorded: dict[str, object] = {}
        self._skipped: set[str] = set()
        self.get_logger().info(f"recording to {self.path} (MCAP)")
        self.timer = self.create_timer(1.0 / self.params["discovery_rate"], self.discover)
        self.params.bind_rate("discovery_rate", self.timer)
        for name in ("topics", "exclude_topics"):
            self.params.on_change(name, lambda _: self._drop_unwanted())
        for entry in self.params["known_topics"]:
            if "=" in entry:
                topic, type_name = (part.strip() for part in entry.split("=", 1))
                if self._wanted(topic):
                    self._record(topic, type_name, qos.matching_publishers([], depth=1000))
        self.discover()

    def _wanted(self, topic: str) -> bool:
        return TopicFilter(self.params["topics"], self.params["exclude_topics"]).accepts(topic)

    def discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.recorded or topic in self._skipped or not self._wanted(topic):
                continue
            if len(types) != 1:
                self._skip(topic, f"{len(types)} types published on it ({', '.join(types)})")
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: nothing to record yet
            self._record(topic, types[0], qos.matching_publishers([p.qos_profile for p in publishers], depth=1000))

    def _record(self, topic: str, type_name: str, profile) -> None:
        try:
            msg_class = message_class(type_name)
            self.bag.add_topic(topic, type_name, offered_qos(
                reliable=profile.reliability == qos.ReliabilityPolicy.RELIABLE,
                latched=qos.is_latched(profile)))
        except (UnknownMessageType, ValueError) as err:
            self._skip(topic, str(err))
            return
        self.recorded[topic] = self.create_subscription(
            msg_class, topic, lambda data, t=topic: self._on_message(t, data), profile, raw=True)
        self.get_logger().info(f"recording {topic} [{type_name}] ({qos.describe(profile)})")

    def _drop_unwanted(self) -> None:
        """After the topic lists changed: stop recording what they no longer select."""
        for topic in [t for t in self.recorded if not self._wanted(t)]:
            self.destroy_subscription(self.recorded.pop(topic))
            self.get_logger().info(f"stopped recording {topic}")

    def _skip(self, topic: str, why: str) -> None:
        self._skipped.add(topic)
        self.get_logger().warning(f"not recording {topic}: {why}")

    def _on_message(self, topic: str, data: bytes) -> None:
        if self.params["paused"]:
            return
        try:
            self.bag.write(topic, time.time_ns(), data)
        except Exception as err:  # a full disk must not take the graph's recorder down silently
            self.errors.drop(f"{topic}: could not write: {err}")

    def close(self) -> None:
        self.bag.close()
        total = sum(self.bag.counts.values())
        lines = ", ".join(f"{t} {n}" for t, n in sorted(self.bag.counts.items()) if n)
        self.get_logger().info(f"bag closed: {self.path}: {total} messages ({lines})")


def main():
    return run_node(RecorderNode)


if __name__ == "__main__":
    raise SystemExit(main())
