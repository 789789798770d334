"""Hypothesis strategies for any ROS 2 message type, read from the type's own description
(rosidl's SLOT_TYPES), so a fuzz test covers every field of every message a node takes from the
wire, including ones nobody planned for: NaN and infinities, integer extremes, empty and huge
arrays, long and odd strings, nested messages.

``mutated(template)`` keeps a valid message and replaces a random subset of its fields, so the
fuzzing also reaches the checks behind the first ones (a transition with the right observation
description but a NaN reward, a frame of the right size with the wrong encoding)."""
from __future__ import annotations

import copy
import importlib

from hypothesis import strategies as st
from rosidl_parser import definition as d
from rclpy.serialization import deserialize_message, serialize_message

INT_RANGES = {
    "int8": (-2 ** 7, 2 ** 7 - 1), "uint8": (0, 2 ** 8 - 1), "int16": (-2 ** 15, 2 ** 15 - 1),
    "uint16": (0, 2 ** 16 - 1), "int32": (-2 ** 31, 2 ** 31 - 1), "uint32": (0, 2 ** 32 - 1),
    "int64": (-2 ** 63, 2 ** 63 - 1), "uint64": (0, 2 ** 64 - 1),
}
LONG_SEQUENCES = (64, 4096)  # lengths past what any field expects (kept to two, for speed)


def _integers(low: int, high: int):
    extremes = sorted({low, high, 0 if low <= 0 <= high else low, min(high, 1), max(low, -1) if low < 0 else low})
    return st.one_of(st.sampled_from(extremes), st.integers(low, high))


def basic(typename: str):
    if typename == "float":
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if typename in ("double", "long double"):
        return st.floats(allow_nan=True, allow_infinity=True)
    if typename == "boolean":
        return st.booleans()
    if typename == "octet":
        return st.binary(min_size=1, max_size=1)
    if typename in ("char",):
        return st.characters(max_codepoint=127)
    if typename in INT_RANGES:
        return _integers(*INT_RANGES[typename])
    raise NotImplementedError(f"no strategy for rosidl basic type {typename}")


def strings(bounded: int | None = None):
    limit = bounded if bounded else 64
    values = [st.text(max_size=limit)]
    if not bounded:
        values.append(st.just("x" * 100_000))  # a sender may put anything in a string
    return st.one_of(*values)


def _message_class(t: d.NamespacedType):
    module = importlib.import_module(".".join(t.namespaces))
    return getattr(module, t.name)


def field_values(t):
    if isinstance(t, d.BasicType):
        return basic(t.typename)
    if isinstance(t, (d.UnboundedString, d.UnboundedWString)):
        return strings()
    if isinstance(t, (d.BoundedString, d.BoundedWString)):
        return strings(t.maximum_size)
    if isinstance(t, d.NamespacedType):
        return st.deferred(lambda: messages(_message_class(t)))
    if isinstance(t, d.Array):
        return st.lists(field_values(t.value_type), min_size=t.size, max_size=t.size)
    if isinstance(t, (d.UnboundedSequence, d.BoundedSequence)):
        element = field_values(t.value_type)
        bound = t.maximum_size if isinstance(t, d.BoundedSequence) else None
        short = st.lists(element, max_size=min(bound or 8, 8))
        if bound is not None or isinstance(t.value_type, d.NamespacedType):
            return short  # nested messages: a few, or drawing them takes the test's time
        long = st.builds(lambda value, n: [value] * n, element, st.sampled_from(LONG_SEQUENCES))
        return st.one_of(short, long)
    raise NotImplementedError(f"no strategy for rosidl type {t!r}")


def _fields(msg_type):
    return list(zip(msg_type.get_fields_and_field_types(), msg_type.SLOT_TYPES))


def messages(msg_type):
    """Any message of ``msg_type``: every field drawn from its whole range."""
    return st.fixed_dictionaries({name: field_values(t) for name, t in _fields(msg_type)}).map(
        lambda values: _build(msg_type(), values))


@st.composite
def mutated(draw, template):
    """``template`` with a random subset of its fields (possibly none, possibly all) replaced."""
    msg = copy.deepcopy(template)
    for name, t in _fields(type(template)):
        if draw(st.booleans()):
            setattr(msg, name, draw(field_values(t)))
    return msg


def _build(msg, values: dict):
    for name, value in values.items():
        setattr(msg, name, value)
    return msg


def over_the_wire(msg):
    """``msg`` as a subscriber receives it: serialized to CDR and read back by rclpy."""
    return deserialize_message(serialize_message(msg), type(msg))
