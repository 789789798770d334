"""numpy <-> sensor_msgs/Image, without cv_bridge (not installable here).

Layout (sensor_msgs/Image): ``height`` rows of ``step`` bytes each, ``data`` holding exactly
``step * height`` bytes; a row holds ``width`` pixels of the encoding's channels and element
type, possibly followed by padding (``step`` larger than the row). Multi-byte elements are in
the byte order ``is_bigendian`` says. Arrays are returned (H, W) for one channel and
(H, W, C) otherwise, in the machine's byte order, as new writable arrays (the message buffer
is never aliased).

A malformed message (unknown encoding, a step shorter than a row, a data length other than
``step * height``) raises ValueError saying which field is wrong, so a subscriber can count
and drop it (``hilserl_ros.ros.validation.DropCounter``) instead of crashing.
"""
from __future__ import annotations

import array
import sys

import numpy as np
from sensor_msgs.msg import Image

from hilserl_ros.vision.images import to_uint8

# encoding -> (element type, channels); names as in sensor_msgs/image_encodings.hpp
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "rgb16": (np.dtype(np.uint16), 3),
    "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4),
    "bgra16": (np.dtype(np.uint16), 4),
    "mono16": (np.dtype(np.uint16), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "16UC1": (np.dtype(np.uint16), 1),
    "16SC1": (np.dtype(np.int16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "32FC3": (np.dtype(np.float32), 3),
    "64FC1": (np.dtype(np.float64), 1),
}

# the encoding an array gets when none is named: the unambiguous cases only
_DEFAULT_ENCODING = {
    ("uint8", 1): "mono8",
    ("uint8", 3): "rgb8",
    ("uint8", 4): "rgba8",
    ("uint16", 1): "mono16",
    ("uint16", 3): "rgb16",
    ("float32", 1): "32FC1",
}

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


def _encoding_spec(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def _channels_of(a: np.ndarray) -> int:
    if a.ndim == 2:
        return 1
    if a.ndim == 3:
        return a.shape[2]
    raise ValueError(f"an image array must be HxW or HxWxC, got shape {a.shape}")


def encoding_for(image: np.ndarray) -> str:
    """The encoding :func:`to_image_msg` uses for ``image`` when none is named."""
    a = np.asarray(image)
    key = (a.dtype.name, _channels_of(a))
    if key not in _DEFAULT_ENCODING:
        raise ValueError(
            f"no default encoding for a {a.dtype} image with {key[1]} channel(s); name one of {', '.join(ENCODINGS)}"
        )
    return _DEFAULT_ENCODING[key]


def to_image_msg(image, encoding: str | None = None, *, frame_id: str = "", stamp=None) -> Image:
    """A sensor_msgs/Image holding ``image`` (HxW or HxWxC) in ``encoding``.

    ``encoding`` None picks rgb8/rgba8/mono8 (uint8), mono16/rgb16 (uint16) or 32FC1
    (float32) from the array. The array's element type and channel count must match the
    encoding (ValueError otherwise: convert with ``images.to_uint8`` first). ``stamp`` is a
    builtin_interfaces/Time or an rclpy Time; the header is left at zero without one.
    """
    a = np.asarray(image)
    if encoding is None:
        encoding = encoding_for(a)
    dtype, channels = _encoding_spec(encoding)
    got = _channels_of(a)
    if got != channels:
        raise ValueError(f"encoding {encoding} needs {channels} channel(s); the array has shape {a.shape}")
    if a.dtype.newbyteorder("=") != dtype:
        raise ValueError(f"encoding {encoding} needs {dtype} elements, the array is {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {a.shape})")
    a = np.ascontiguousarray(a, dtype=dtype)  # native byte order, rows back to back
    msg = Image()
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG_ENDIAN and dtype.itemsize > 1)
    msg.step = msg.width * channels * dtype.itemsize
    # array('B') is stored as is; bytes or a list go through the generated setter's
    # per-element check where field checks are on (Humble; ROS_PYTHON_CHECK_FIELDS=1): ~70 ms for
    # a 640x480 RGB frame
    msg.data = array.array("B", a.tobytes())
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp.to_msg() if hasattr(stamp, "to_msg") else stamp
    return msg


def from_image_msg(msg: Image) -> np.ndarray:
    """The pixels of ``msg`` as a new array, (H, W) for one channel, (H, W, C) otherwise,
    element type from the encoding, native byte order. ValueError for a malformed message."""
    dtype, channels = _encoding_spec(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ValueError(f"the image is empty ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(
            f"step {step} is shorter than one row: {width} px x {channels} channel(s) x "
            f"{dtype.itemsize} byte(s) = {row_bytes} bytes for {msg.encoding}"
        )
    data = msg.data
    try:
        buf = np.frombuffer(data, dtype=np.uint8)  # array('B') / bytes: no copy
    except TypeError:
        buf = np.asarray(data, dtype=np.uint8)  # a list
    if buf.size != step * height:
        raise ValueError(
            f"data holds {buf.size} bytes, but step x height = {step} x {height} = {step * height}"
        )
    rows = buf.reshape(height, step)[:, :row_bytes]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    pixels = np.ascontiguousarray(rows).view(wire).astype(dtype, copy=True)  # new, native order
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width, channels)


def msg_to_rgb8(msg: Image, *, float_scale: float | None = None) -> np.ndarray:
    """The image as uint8 RGB (H, W, 3) whatever its encoding: BGR(A) reordered, alpha dropped,
    16-bit full range mapped to 8 bits, float by ``images.to_uint8``'s rule (or ``float_scale``)."""
    pixels = from_image_msg(msg)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[..., [2, 1, 0]]
    return to_uint8(pixels, float_scale=float_scale)


def compressed_to_rgb8(msg) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG, as image_transport's compressed plugin
    sends it) as uint8 RGB (H, W, 3); ValueError when it does not decode."""
    import cv2

    data = np.frombuffer(bytes(msg.data), np.uint8)
    pixels = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if pixels is None:
        raise ValueError(f"compressed image ({msg.format or 'no format'}, {data.size} bytes) does not decode")
    return pixels[..., ::-1].copy()  # OpenCV decodes to BGR
