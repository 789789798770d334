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



def matching_publishers(publishers, depth: int = 10, max_latched_depth: int = 25) -> QoSProfile:
    """A subscription QoS that connects to every one of ``publishers`` (their QoSProfiles) and
    keeps what they offer, as ``ros2 bag record`` does: best effort if any publisher is best
    effort (a reliable reader would not match it), transient local only if all are (a transient
    local reader does not match a volatile writer), so latched values such as the policy
    weights arrive on joining. ``depth`` is for live topics (a recorder wants a deep queue, a
    viewer the latest messages); a latched topic keeps what its publishers hold."""
    best_effort = any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
    latched = bool(publishers) and all(is_latched(p) for p in publishers)
    if latched:  # discovery often reports depth 0 (unknown): at least one each
        depth = min(max_latched_depth, sum(max(1, p.depth) for p in publishers))
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def is_latched(profile: QoSProfile) -> bool:
    return profile.durability == DurabilityPolicy.TRANSIENT_LOCAL

def describe(profile: QoSProfile) -> str:
    reliability = "reliable" if profile.reliability == ReliabilityPolicy.RELIABLE else "best effort"
    durability = ", transient local" if is_latched(profile) else ""
    return reliability + durability
