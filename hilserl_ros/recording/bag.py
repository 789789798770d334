"""rosbag2 directories in MCAP: write what a node receives, read it back (no rclpy here).

The writer is the `rosbags` library's rosbag2 writer (format version 9, MCAP storage): each
topic carries its full ros2msg definition and type hash and the QoS its publishers offered,
so `ros2 bag play`, `ros2 bag info`, Foxglove and `rosbags` all read the result. Messages stay
in the CDR bytes they arrived in: recording never decodes, and replay publishes those bytes.
"""
from __future__ import annotations

import datetime
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from hilserl_ros.recording.types import MessageTypes, shared_types

_NO_TIME = QosTime(0, 0)


def offered_qos(reliable: bool, latched: bool, depth: int = 10) -> Qos:
    """The QoS a publisher offered, in the form rosbag2 keeps in metadata.yaml (ros2 bag play
    re-offers it: a latched topic is replayed latched)."""
    return Qos(QosHistory.KEEP_LAST, depth,
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               _NO_TIME, _NO_TIME, QosLiveliness.AUTOMATIC, _NO_TIME, False)


def default_bag_name(prefix: str = "run") -> str:
    return f"{prefix}_{datetime.datetime.now().strftime('%Y%m%d_%H%M%S')}"


class BagWriter:
    """One rosbag2 directory being written. Thread-safe; topics can be added at any time."""

    def __init__(self, path: str | os.PathLike, types: MessageTypes | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; a bag is never overwritten")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.types = types or shared_types()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.closed = False

    def add_topic(self, topic: str, type_name: str, qos: Qos | None = None) -> None:
        """Register a topic (its definition must be installed: raises UnknownMessageType)."""
        type_name = self.types.ensure(type_name)
        with self._lock:
            if topic in self._connections:
                return
            self._connections[topic] = self._writer.add_connection(
                topic, type_name, typestore=self.types.typestore,
                offered_qos_profiles=[qos] if qos is not None else [])
            self.counts[topic] = 0

    def has_topic(self, topic: str) -> bool:
        return topic in self._connections

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            self._writer.write(self._connections[topic], int(timestamp_ns), data)
            self.counts[topic] += 1

    def close(self) -> None:
        """Writes the MCAP summary and metadata.yaml; without it the bag needs `ros2 bag reindex`."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._writer.close()


@dataclass(frozen=True)
class BagMessage:
    topic: str
    type_name: str
    timestamp_ns: int  # receive time when recorded
    data: bytes  # CDR, as it travelled
    qos: tuple  # rosbags Qos profiles the publishers offered
    definition: str = ""  # the type's full ros2msg definition as recorded (decode with it: MessageTypes.decode)


def bag_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Bag directories named directly, or found one level below a directory of bags."""
    found = []
    for path in map(Path, paths):
        if (path / "metadata.yaml").is_file():
            found.append(path)
        elif path.is_dir() and any((child / "metadata.yaml").is_file() for child in path.iterdir()):
            found.extend(sorted(child for child in path.iterdir() if (child / "metadata.yaml").is_file()))
        else:
            raise FileNotFoundError(f"{path}: not a rosbag2 directory (no metadata.yaml) nor a folder of them")
    return found


def read_messages(paths: Iterable[str | os.PathLike], topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Every message of the bags in time order (bag by bag), optionally only some topics."""
    wanted = set(topics) if topics is not None else None
    for path in bag_dirs(paths):
        with Reader(path) as reader:
            connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
            for connection, timestamp, data in reader.messages(connections=connections):
                msgdef = getattr(connection, "msgdef", None)
                yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(data),
                                 tuple(getattr(connection.ext, "offered_qos_profiles", ()) or ()),
                                 getattr(msgdef, "data", "") or "")


@dataclass(frozen=True)
class BagTopic:
    type_name: str
    count: int
    qos: tuple  # rosbags Qos profiles the publishers offered


def bag_topics(paths: Iterable[str | os.PathLike]) -> dict[str, BagTopic]:
    """topic -> type, message count and offered QoS, from the bags' metadata (`ros2 bag info`)."""
    found: dict[str, BagTopic] = {}
    for bag in bag_dirs(paths):
        with Reader(bag) as reader:
            for c in reader.connections:
                before = found[c.topic].count if c.topic in found else 0
                found[c.topic] = BagTopic(c.msgtype, before + c.msgcount,
                                          tuple(getattr(c.ext, "offered_qos_profiles", ()) or ()))
    return found


def topic_counts(path: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """topic -> (type, message count)."""
    return {topic: (info.type_name, info.count) for topic, info in bag_topics([path]).items()}
