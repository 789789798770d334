"""Message types by name: the Python class for rclpy, the full ros2msg definition for bags and Foxglove.

A bag or a Foxglove channel must carry the complete definition of its type (the type's own
text followed by every type it uses), so any reader can decode it without our code. The
definitions come from the .msg files installed with each interface package (ament index),
the same files the running nodes were generated from; `rosbags` parses them and writes the
concatenated form that rosbag2 and Foxglove read.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

# The package's own interfaces, found in the source tree when the install is not on the index.
_SOURCE_MSG_DIR = Path(__file__).resolve().parents[2] / "msg"


class UnknownMessageType(LookupError):
    """No definition of the type can be found (its package is not installed)."""


def split_type_name(type_name: str) -> tuple[str, str, str]:
    """'sensor_msgs/msg/Image' -> ('sensor_msgs', 'msg', 'Image'); 'pkg/Type' is read as a msg."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a ROS type name: {type_name!r} (expected package/msg/Type)")
    return parts[0], parts[1], parts[2]


def normalize_type_name(type_name: str) -> str:
    return "/".join(split_type_name(type_name))


def message_class(type_name: str):
    """The generated Python class of a message type, as rclpy needs it to subscribe or publish."""
    package, kind, name = split_type_name(type_name)
    try:
        module = importlib.import_module(f"{package}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise UnknownMessageType(
            f"{type_name}: no Python module for it; is its interface package installed and sourced?"
        ) from exc


def _msg_file(type_name: str) -> Path | None:
    package, kind, name = split_type_name(type_name)
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory(package)) / kind / f"{name}.msg")
        except PackageNotFoundError:
            pass
    except ImportError:  # reading bags on a machine without ROS
        pass
    if package == "hilserl_ros":
        candidates.append(_SOURCE_MSG_DIR / f"{name}.msg")
    return next((path for path in candidates if path.is_file()), None)


class MessageTypes:
    """A rosbags typestore that learns any installed type on first use. Thread-safe."""

    def __init__(self, store: Stores = Stores.ROS2_KILTED):
        self.typestore: Typestore = get_typestore(store)
        self._lock = threading.Lock()
        self._definitions: dict[str, str] = {}
        self._recorded: dict[tuple[str, str], Typestore] = {}  # (type, a bag's older definition) -> its store

    def ensure(self, type_name: str) -> str:
        """Register `type_name` and everything it uses; returns the normalized name."""
        type_name = normalize_type_name(type_name)
        with self._lock:
            self._register(type_name, set())
        return type_name

    def _register(self, type_name: str, visiting: set[str]) -> None:
        if type_name in self.typestore.fielddefs or type_name in visiting:
            return
        visiting.add(type_name)
        path = _msg_file(type_name)
        if path is None:
            raise UnknownMessageType(f"{type_name}: no .msg file found on the ament index")
        parsed = get_types_from_msg(path.read_text(), type_name)
        for _consts, fields in parsed.values():
            for _field_name, desc in fields:
                for dependency in _named_types(desc):
                    self._register(dependency, visiting)
        self.typestore.register(parsed)

    def definition(self, type_name: str) -> str:
        """The full ros2msg text (own fields, then each used type after a '=====' line)."""
        type_name = self.ensure(type_name)
        with self._lock:
            if type_name not in self._definitions:
                self._definitions[type_name] = self.typestore.generate_msgdef(type_name, ros_version=2)[0]
            return self._definitions[type_name]

    def deserialize(self, data: bytes, type_name: str, definition: str | None = None):
        """``definition``: the full definition the data was written with (a bag's, per topic).
        A bag recorded with another version of a type decodes with its own (fields added since
        are missing from the message; read them with ``getattr(msg, name, default)``)."""
        type_name = self.ensure(type_name)
        if definition and definition.strip() != self.definition(type_name).strip():
            return self._store_of(type_name, definition).deserialize_cdr(data, type_name)
        return self.typestore.deserialize_cdr(data, type_name)

    def _store_of(self, type_name: str, definition: str) -> Typestore:
        key = (type_name, definition)
        with self._lock:
            store = self._recorded.get(key)
            if store is None:
                store = get_typestore(Stores.EMPTY)
                store.register(get_types_from_msg(definition, type_name))
                self._recorded[key] = store
            return store

    def decode(self, message) -> object:
        """A bag's message (hilserl_ros.recording.bag.BagMessage) with the definition it was recorded with."""
        return self.deserialize(message.data, message.type_name, message.definition)

    def serialize(self, message, type_name: str) -> bytes:
        return bytes(self.typestore.serialize_cdr(message, self.ensure(type_name)))


def _named_types(desc) -> list[str]:
    """Names of the message types a parsed field refers to (nested through arrays)."""
    node_type, value = desc
    if node_type.name == "NAME":
        return [value]
    if node_type.name in ("ARRAY", "SEQUENCE"):
        return _named_types(value[0])
    return []


_shared: MessageTypes | None = None


def shared_types() -> MessageTypes:
    """One typestore per process: every node and tool sees the same definitions."""
    global _shared
    if _shared is None:
        _shared = MessageTypes()
    return _shared
