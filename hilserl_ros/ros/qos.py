"""QoS profiles of the graph, each chosen for what the data is.

- SENSOR: joint states, camera frames, joystick. Best effort, keep last few: a late sample
  is worthless, a newer one is coming, and retransmissions would add latency.
- TRANSITIONS: actor -> learner. Reliable with a deep queue: every step is training data.
- LATCHED: policy weights, robot description, workspace markers. Reliable + transient local,
  depth 1: a node that starts late gets the latest value at once.
- EVENTS: episode statistics, intervention state, EE commands, learner statistics. Reliable,
  modest depth: small messages a subscriber should not miss.
"""
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

SENSOR = qos_profile_sensor_data

TRANSITIONS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

EVENTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
