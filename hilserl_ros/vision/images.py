"""Camera frames to the policy's input: uint8 RGB, cropped and resized (no ROS).

Why this module exists: the field report (``../shared/context/hilserl-tuning-notes.md``)
found images saved as float [0, 255] where uint8 was expected, which broke checkpoints. Every
image that enters the graph goes through :func:`to_uint8`, which accepts what cameras,
renderers and array code produce and always returns the same thing.

Value rules of :func:`to_uint8`
-------------------------------
- ``uint8``: passed through unchanged (no copy when the shape is already right).
- ``uint16``: the full 16-bit range maps to 8 bits, ``round(v * 255 / 65535)`` (a 16-bit PNG
  or a ``mono16`` camera is full-range; a 12-bit sensor packed in 16 bits comes out dark, as it
  does in every viewer).
- other integer types (int8..int64, uint32, uint64): taken as 8-bit intensities and clipped
  to [0, 255]; this is what arithmetic on uint8 images gives (numpy promotes to int64).
- ``bool``: False -> 0, True -> 255.
- float (float16/32/64): the range is ``float_scale`` when given (1.0 or 255.0 where the
  source is known: pass it), else decided from the data by the field report's rule:

      max(image) > 1 + 1e-5  ->  the image is in [0, 255]
      otherwise              ->  the image is in [0, 1]

  Values are clipped to [0, scale] (negative values become 0, over-range values white),
  scaled to [0, 255] and rounded to the nearest integer (the field report truncated with
  ``astype``, which makes 254.9 -> 254 and darkens every pixel by half a level on average).
  Edge cases of the rule, both decided by the brightest pixel:
    * an all-dark [0, 255] image whose brightest pixel is <= 1 (a black frame, a lens cap)
      is read as [0, 1] and comes out stretched up to 255: pass ``float_scale=255.0``;
    * a [0, 1] image that overshoots 1 by more than 1e-5 anywhere (augmentation, HDR
      rendering) is read as [0, 255] and comes out almost black: clip it first or pass
      ``float_scale=1.0``.
  NaN or infinite pixels raise ValueError: there is no honest brightness to give them, and a
  NaN image usually means a broken upstream computation that must not reach training data.

Shapes: (H, W) and (H, W, 1) are grayscale, replicated to (H, W, 3) unless
``keep_mono=True`` (then (H, W)); (H, W, 3) is RGB; (H, W, 4) is RGBA and the alpha channel is
dropped (not composited: camera alpha is opaque). Channel order is never changed here: a BGR
frame from OpenCV must be converted to RGB by the caller.

Crop rectangles are ``(x, y, w, h)`` in pixels, origin at the top-left corner, x to the right
and y down (the image convention of OpenCV and sensor_msgs/Image); sizes are ``(w, h)``.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

UNIT_RANGE_MAX = 1.0 + 1e-5  # brightest value a float [0, 1] image may have (field report's tolerance)

# dtypes cv2.resize handles with every interpolation used here
_RESIZABLE = {np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64)}


def float_range_scale(image: np.ndarray) -> float:
    """255.0 if a float image is in [0, 255] by the field report's rule, else 1.0."""
    return 255.0 if float(np.max(image)) > UNIT_RANGE_MAX else 1.0


def _check_finite(image: np.ndarray) -> None:
    bad = ~np.isfinite(image)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"image has {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index {first} "
            f"(value {image[first]}); refusing to convert it to uint8"
        )


def _values_to_uint8(image: np.ndarray, float_scale: float | None) -> np.ndarray:
    kind = image.dtype.kind
    if image.dtype == np.uint8:
        return image
    if kind == "b":
        return np.where(image, np.uint8(255), np.uint8(0))
    if image.dtype == np.uint16:
        # exact integer rounding of v * 255 / 65535 (65535 -> 255, 257 -> 1, 128 -> 0)
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if kind in "iu":
        return np.clip(image, 0, 255).astype(np.uint8)
    if kind == "f":
        _check_finite(image)
        if float_scale is None:
            scale = float_range_scale(image)
        else:
            scale = float(float_scale)
            if not np.isfinite(scale) or scale <= 0:
                raise ValueError(f"float_scale must be a positive finite number (1.0 or 255.0), got {float_scale}")
        work = np.clip(image.astype(np.float32, copy=False), 0.0, scale)
        if scale != 255.0:
            work = work * np.float32(255.0 / scale)
        return np.rint(work).astype(np.uint8)
    raise TypeError(f"unsupported image dtype {image.dtype}: expected an integer, bool or float array")


def to_uint8(image, *, float_scale: float | None = None, keep_mono: bool = False) -> np.ndarray:
    """The image as a C-contiguous uint8 RGB array (H, W, 3), or (H, W) for a grayscale input
    with ``keep_mono``. See the module docstring for the value rules.

    Raises ValueError for an empty image, a shape that is not an image, or non-finite values;
    TypeError for a dtype that is not numeric.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        if a.shape[2] == 4:
            a = a[..., :3]  # RGBA: drop alpha
        elif a.shape[2] == 1:
            a = a[..., 0]
    elif a.ndim != 2:
        raise ValueError(
            f"an image must be HxW or HxWx1 (grayscale), HxWx3 (RGB) or HxWx4 (RGBA); got shape {a.shape}"
        )
    if a.size == 0:
        raise ValueError(f"the image is empty (shape {np.shape(image)})")
    out = _values_to_uint8(a, float_scale)
    if out.ndim == 2 and not keep_mono:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


# ---------------------------------------------------------------------------- geometry
def _ints(value: Sequence, count: int, what: str) -> tuple[int, ...]:
    values = list(value)
    if len(values) != count or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        raise ValueError(f"{what} must be {count} integers, got {value!r}")
    return tuple(int(v) for v in values)


def crop_error(crop: Sequence, width: int | None = None, height: int | None = None) -> str | None:
    """Why ``crop`` (x, y, w, h) is not a valid crop of a ``width`` x ``height`` image, or
    None. Without a size only the form is checked (four integers, x, y >= 0, w, h > 0)."""
    try:
        x, y, w, h = _ints(crop, 4, "a crop")
    except ValueError as err:
        return f"{err} as [x, y, w, h]"
    if x < 0 or y < 0:
        return f"crop [{x}, {y}, {w}, {h}]: x and y must be >= 0"
    if w <= 0 or h <= 0:
        return f"crop [{x}, {y}, {w}, {h}]: w and h must be > 0"
    if width is not None and height is not None and (x + w > width or y + h > height):
        return f"crop [{x}, {y}, {w}, {h}] does not fit inside the {width}x{height} image"
    return None


def size_error(size: Sequence) -> str | None:
    """Why ``size`` is not a valid (w, h) output size, or None."""
    try:
        w, h = _ints(size, 2, "a size")
    except ValueError as err:
        return f"{err} as [w, h]"
    if w <= 0 or h <= 0:
        return f"size [{w}, {h}]: w and h must be > 0"
    return None


def center_square_crop(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` image as (x, y, w, h): resizing
    it to a square policy input keeps the aspect ratio."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def crop_resize(image, crop: Sequence[int] | None = None, size: Sequence[int] | None = None) -> np.ndarray:
    """Crop ``image`` to ``crop`` = (x, y, w, h), then resize it to ``size`` = (w, h).

    Either may be None (skip that step). Downscaling uses ``cv2.INTER_AREA`` (averages the
    source pixels: no aliasing, the choice OpenCV documents for shrinking); a size larger than
    the crop in either direction uses ``cv2.INTER_LINEAR``. Grayscale (H, W) and (H, W, 1)
    inputs keep their shape. Returns a new C-contiguous array (never a view of ``image``,
    whose buffer a capture may reuse). Raises ValueError for a crop outside the image or a bad
    size, TypeError for a dtype OpenCV cannot resize.
    """
    a = np.asarray(image)
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"an image must be a non-empty HxW or HxWxC array, got shape {a.shape}")
    height, width = a.shape[:2]
    if crop is not None:
        reason = crop_error(crop, width, height)
        if reason:
            raise ValueError(reason)
        x, y, w, h = (int(v) for v in crop)
        a = a[y:y + h, x:x + w]
    if size is not None:
        reason = size_error(size)
        if reason:
            raise ValueError(reason)
        out_w, out_h = (int(v) for v in size)
        if (out_w, out_h) != (a.shape[1], a.shape[0]):
            if a.dtype not in _RESIZABLE:
                raise TypeError(f"cannot resize a {a.dtype} image; convert it with to_uint8 first")
            shrink = out_w <= a.shape[1] and out_h <= a.shape[0]
            single_channel = a.ndim == 3 and a.shape[2] == 1
            a = cv2.resize(a, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            if single_channel and a.ndim == 2:  # cv2 drops a trailing channel axis of 1
                a = a[:, :, None]
            return np.ascontiguousarray(a)  # cv2 made a new array
    return np.array(a, copy=True, order="C")
