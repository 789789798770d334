"""rosbag2 player node (/player): republishes a recorded bag into the graph at its timing.

What ``ros2 bag play`` does where rosbag2 is not installed: the CDR bytes of each message are
published unchanged on their topic, each after the recorded gap divided by ``rate`` (live:
``ros2 param set /player rate 2.0``), with the QoS the original publishers offered (latched
topics are re-offered latched). ``publish_clock`` also drives /clock from the bag's time for
nodes on use_sim_time. The node exits when the bag is played unless ``loop`` is set.

    ros2 run hilserl_ros player_node --ros-args -p bag:=runs/run_20261124_101500 -p rate:=2.0
"""
from __future__ import annotations

import threading
import time

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from hilserl_ros import topics as names
from hilserl_ros.recording.bag import bag_topics, read_messages
from hilserl_ros.recording.types import UnknownMessageType, message_class
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.topic_filter import TopicFilter, regex_problem
from hilserl_ros.ros.runner import run_node, start_worker, stop_node

# never replayed: they belong to the nodes running now, not to the recorded ones
NOT_REPLAYED = ("/parameter_events", "/rosout")


PARAMS = [
    ParamSpec("bag", "", "bag directory (or a folder of bag directories) to play", read_only=True),
    ParamSpec("rate", 1.0, "playback speed: 2.0 plays twice as fast", min=0.01, max=100.0),
    ParamSpec("topics", [".*"], "play topics matching any of these regular expressions", read_only=True,
              validator=regex_problem),
    ParamSpec("loop", False, "start again at the end"),
    ParamSpec("publish_clock", False, "publish /clock from the bag's time (for use_sim_time nodes)",
              read_only=True),
    ParamSpec("exit_when_done", True, "end the process when the bag is played (as ros2 bag play does)",
              read_only=True),
    ParamSpec("start_delay", 1.0, "seconds to wait before the first message so subscribers can connect",
              min=0.0, max=60.0, unit="s"),
]


def _publisher_qos(offered_profiles: tuple) -> QoSProfile:
    """The QoS offered when recorded (rosbags Qos), or reliable volatile if the bag has none."""
    reliable, latched = True, False
    if offered_profiles:
        offered = offered_profiles[0]
        reliable = offered.reliability.name != "BEST_EFFORT"
        latched = offered.durability.name == "TRANSIENT_LOCAL"
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if latched else 100,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class PlayerNode(Node):
    def __init__(self, **node_options):
        super().__init__("player", **node_options)
        self.params = declare(self, PARAMS)
        if not self.params["bag"]:
            raise ValueError("player: set the bag parameter (-p bag:=path/to/bag)")
        self.filter = TopicFilter(self.params["topics"], NOT_REPLAYED)
        self.publishers_by_topic: dict[str, object] = {}
        self.clock_pub = self.create_publisher(Clock, names.CLOCK, 10) if self.params["publish_clock"] else None
        self.published = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._rate_changed = threading.Event()
        self.params.on_change("rate", lambda _: self._rate_changed.set())
        # every publisher exists before the first message, so subscribers have `start_delay`
        # to match them (a publisher made just in time would lose its first messages)
        for topic, info in bag_topics([self.params["bag"]]).items():  # a bad path fails here
            if self._wanted(topic):
                self._make_publisher(topic, info.type_name, info.qos)
        self._thread = start_worker(self, self._play, "player")  # its death is the node's

    def _wanted(self, topic: str) -> bool:
        return self.filter.accepts(topic)

    def _make_publisher(self, topic: str, type_name: str, offered_profiles: tuple) -> None:
        try:
            msg_class = message_class(type_name)
        except UnknownMessageType as err:
            self.get_logger().warning(f"not playing {topic}: {err}")
            return
        self.publishers_by_topic[topic] = self.create_publisher(msg_class, topic, _publisher_qos(offered_profiles))

    def _play(self) -> None:
        self._stop.wait(self.params["start_delay"])
        while not self._stop.is_set():
            self._play_once()
            if not self.params["loop"]:
                break
        for publisher in self.publishers_by_topic.values():
            # reliable subscribers get the tail of the bag before the process goes away
            publisher.wait_for_all_acked(Duration(seconds=2.0))
        self.get_logger().info(f"played {self.published} messages from {self.params['bag']}")
        self.finished.set()
        if self.params["exit_when_done"] and not self._stop.is_set():
            stop_node(self)  # the bag was played

    def _play_once(self) -> None:
        anchor_wall = anchor_bag = None
        for message in read_messages([self.params["bag"]]):
            if self._stop.is_set():
                return
            publisher = self.publishers_by_topic.get(message.topic)
            if publisher is None:  # not wanted, or its type is not installed
                continue
            if anchor_bag is None or self._rate_changed.is_set():
                # (re)anchor: from here on, bag time runs at `rate` times wall time
                self._rate_changed.clear()
                anchor_wall, anchor_bag = time.monotonic(), message.timestamp_ns
            due = anchor_wall + (message.timestamp_ns - anchor_bag) / 1e9 / self.params["rate"]
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if self.clock_pub is not None:
                clock = Clock()
                clock.clock.sec, clock.clock.nanosec = divmod(message.timestamp_ns, 1_000_000_000)
                self.clock_pub.publish(clock)
            publisher.publish(message.data)
            self.published += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main():
    return run_node(PlayerNode)


if __name__ == "__main__":
    raise SystemExit(main())
