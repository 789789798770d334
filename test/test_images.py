"""Image conversion to the policy's uint8 RGB input, crop/resize, and numpy <-> sensor_msgs/Image.

The float-range cases come from the field report (../shared/context/hilserl-tuning-notes.md):
images saved as float [0, 255] instead of uint8 broke checkpoints."""
import array
import sys

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.time import Time as RclpyTime
from sensor_msgs.msg import Image

from hilserl_ros.vision.images import center_square_crop, crop_resize, to_uint8
from hilserl_ros.vision.ros_image import ENCODINGS, encoding_for, from_image_msg, msg_to_rgb8, to_image_msg

RNG = np.random.default_rng(7)


def rgb(h=6, w=8):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------- to_uint8: values
def test_uint8_rgb_passes_through_unchanged_without_a_copy():
    image = rgb()
    out = to_uint8(image)
    assert out is image


def test_float_unit_range_scales_to_0_255_and_rounds():
    image = np.array([[0.0, 0.2, 0.5, 1.0]], np.float32)
    assert to_uint8(image, keep_mono=True).tolist() == [[0, 51, 128, 255]]


def test_float_0_255_from_the_field_report_is_not_multiplied_again():
    frame = rgb()
    as_saved = frame.astype(np.float32)  # what the image writer received: float [0, 255]
    out = to_uint8(as_saved)
    assert out.dtype == np.uint8 and np.array_equal(out, frame)
    # rounded, not truncated as astype(np.uint8) would (254.6 -> 254)
    assert to_uint8(np.array([[254.6, 10.4, 10.5001]]), keep_mono=True).tolist() == [[255, 10, 11]]


def test_float_range_rule_is_max_above_1_plus_1e5():
    assert to_uint8(np.array([[0.5, 1.0 + 5e-6]]), keep_mono=True).tolist() == [[128, 255]]  # [0, 1]
    assert to_uint8(np.array([[0.5, 1.0 + 5e-5]]), keep_mono=True).tolist() == [[0, 1]]  # [0, 255]


def test_all_dark_0_255_image_is_read_as_0_1_unless_the_scale_is_given():
    dark = np.full((2, 2), 0.8)  # a black [0, 255] frame with a little sensor noise
    assert (to_uint8(dark, keep_mono=True) == 204).all()  # the documented edge case of the rule
    assert (to_uint8(dark, float_scale=255.0, keep_mono=True) == 1).all()
    assert (to_uint8(np.full((2, 2), 0.8), float_scale=1.0, keep_mono=True) == 204).all()


def test_uint16_full_range_maps_to_8_bits():
    image = np.array([[0, 128, 257, 32896, 65535]], np.uint16)
    assert to_uint8(image, keep_mono=True).tolist() == [[0, 0, 1, 128, 255]]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64])
def test_other_integer_types_are_8_bit_intensities_clipped(dtype):
    values = [0, 100, 255, 300] if np.iinfo(dtype).max >= 300 else [0, 100, 127]
    if np.iinfo(dtype).min < 0:
        values.append(-5)
    out = to_uint8(np.array([values], dtype), keep_mono=True)
    assert out.tolist() == [[min(max(v, 0), 255) for v in values]]


def test_bool_is_black_and_white():
    assert to_uint8(np.array([[True, False]]), keep_mono=True).tolist() == [[255, 0]]


@pytest.mark.parametrize("image, expected", [
    (np.array([[-0.5, 0.25, 1.0]]), [[0, 64, 255]]),  # [0, 1] by the rule; negative -> 0
    (np.array([[-10.0, 100.0, 300.0]]), [[0, 100, 255]]),  # [0, 255]; over-range -> 255
    (np.array([[-1.0, -0.2]]), [[0, 0]]),  # all negative: black
])
def test_negative_and_over_range_floats_are_clipped(image, expected):
    assert to_uint8(image, keep_mono=True).tolist() == expected


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_with_where(bad):
    image = np.zeros((4, 5, 3), np.float32)
    image[2, 3, 1] = bad
    with pytest.raises(ValueError, match=r"1 non-finite value.*\(2, 3, 1\)"):
        to_uint8(image)


# ---------------------------------------------------------------------------- to_uint8: shapes
def test_grayscale_hw_is_replicated_to_rgb():
    gray = RNG.integers(0, 256, (4, 5), dtype=np.uint8)
    out = to_uint8(gray)
    assert out.shape == (4, 5, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))
    assert np.array_equal(to_uint8(gray, keep_mono=True), gray)


def test_grayscale_hw1_is_grayscale():
    gray = RNG.random((4, 5, 1))
    out = to_uint8(gray)
    assert out.shape == (4, 5, 3)
    assert np.array_equal(out[..., 0], np.rint(gray[..., 0] * 255).astype(np.uint8))
    assert to_uint8(gray, keep_mono=True).shape == (4, 5)


def test_rgba_drops_alpha():
    image = rgb()
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 7, np.uint8)], axis=2)
    out = to_uint8(rgba)
    assert out.shape == image.shape and np.array_equal(out, image) and out.flags.c_contiguous
    assert np.array_equal(to_uint8(rgba.astype(np.float64) / 255.0), image)


def test_output_is_c_contiguous_for_a_strided_input():
    image = rgb(8, 10)[::2, ::-1]
    out = to_uint8(image)
    assert out.flags.c_contiguous and np.array_equal(out, image)


@pytest.mark.parametrize("shape", [(5,), (4, 5, 2), (4, 5, 5), (2, 4, 5, 3), (0, 5, 3), (4, 0)])
def test_non_image_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="image"):
        to_uint8(np.zeros(shape, np.uint8))


def test_non_numeric_dtype_and_bad_scale_are_refused():
    with pytest.raises(TypeError, match="complex"):
        to_uint8(np.zeros((2, 2), np.complex64))
    with pytest.raises(ValueError, match="float_scale"):
        to_uint8(np.zeros((2, 2)), float_scale=0.0)


# ---------------------------------------------------------------------------- crop / resize
def test_crop_is_x_y_w_h_and_returns_a_copy():
    image = rgb(6, 8)
    out = crop_resize(image, crop=(2, 1, 3, 4))
    assert out.shape == (4, 3, 3) and np.array_equal(out, image[1:5, 2:5])
    assert not np.shares_memory(out, image) and out.flags.c_contiguous
    assert not np.shares_memory(crop_resize(image), image)  # a no-op is still a new array


def test_downscale_uses_area_averaging():
    image = np.zeros((4, 4), np.uint8)
    image[:2, :2], image[:2, 2:], image[2:, :2], image[2:, 2:] = (
        np.array([[0, 100], [100, 200]]), 40, np.array([[10, 10], [30, 30]]), 255)
    out = crop_resize(image, size=(2, 2))
    assert out.tolist() == [[100, 40], [20, 255]]  # the mean of each 2x2 block: no aliasing
    big = rgb(120, 160)
    assert np.array_equal(crop_resize(big, size=(64, 48)), cv2.resize(big, (64, 48), interpolation=cv2.INTER_AREA))


def test_upscale_uses_linear_interpolation():
    image = rgb(4, 5)
    assert np.array_equal(crop_resize(image, size=(10, 8)), cv2.resize(image, (10, 8), interpolation=cv2.INTER_LINEAR))


def test_crop_then_resize():
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = (200, 30, 60)
    image[:, 80:] = (20, 80, 220)
    out = crop_resize(image, crop=(80, 0, 80, 120), size=(32, 32))
    assert out.shape == (32, 32, 3) and (out == (20, 80, 220)).all()


def test_single_channel_axis_survives_resize():
    assert crop_resize(np.zeros((8, 8, 1), np.uint8), size=(4, 2)).shape == (2, 4, 1)
    assert crop_resize(np.zeros((8, 8), np.float32), size=(4, 2)).shape == (2, 4)


@pytest.mark.parametrize("crop, why", [
    ((0, 0, 9, 6), "does not fit inside the 8x6 image"),
    ((4, 3, 5, 3), "does not fit"),
    ((-1, 0, 2, 2), "x and y must be >= 0"),
    ((0, 0, 0, 2), "w and h must be > 0"),
    ((0, 0, 2), "4 integers"),
    ((0, 0, 2.0, 2), "4 integers"),
    ((0, 0, True, 2), "4 integers"),
])
def test_bad_crops_are_refused(crop, why):
    with pytest.raises(ValueError, match=why):
        crop_resize(rgb(6, 8), crop=crop)


@pytest.mark.parametrize("size, why", [((0, 4), "must be > 0"), ((4,), "2 integers"), ((4, -2), "must be > 0")])
def test_bad_sizes_are_refused(size, why):
    with pytest.raises(ValueError, match=why):
        crop_resize(rgb(), size=size)


def test_resize_refuses_a_dtype_opencv_cannot_resize():
    with pytest.raises(TypeError, match="to_uint8"):
        crop_resize(np.zeros((4, 4), np.int64), size=(2, 2))


def test_center_square_crop():
    assert center_square_crop(640, 480) == (80, 0, 480, 480)
    assert center_square_crop(480, 640) == (0, 80, 480, 480)
    assert center_square_crop(5, 5) == (0, 0, 5, 5)
    with pytest.raises(ValueError):
        center_square_crop(0, 10)


# ---------------------------------------------------------------------------- sensor_msgs/Image
def sample(encoding, h=3, w=5):
    dtype, channels = ENCODINGS[encoding]
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype.kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_round_trip_for_each_encoding(encoding):
    pixels = sample(encoding)
    msg = to_image_msg(pixels, encoding, frame_id="camera_link", stamp=Time(sec=3, nanosec=5))
    dtype, channels = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (3, 5, encoding)
    assert msg.step == 5 * channels * dtype.itemsize and len(msg.data) == msg.step * msg.height
    assert msg.is_bigendian == (sys.byteorder == "big" and dtype.itemsize > 1)
    assert msg.header.frame_id == "camera_link" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 5)
    back = from_image_msg(msg)
    assert back.dtype == dtype and back.shape == pixels.shape and np.array_equal(back, pixels)


@pytest.mark.parametrize("dtype, shape, encoding", [
    (np.uint8, (2, 3, 3), "rgb8"), (np.uint8, (2, 3), "mono8"), (np.uint8, (2, 3, 1), "mono8"),
    (np.uint8, (2, 3, 4), "rgba8"), (np.uint16, (2, 3), "mono16"), (np.float32, (2, 3), "32FC1"),
])
def test_default_encoding_from_the_array(dtype, shape, encoding):
    assert encoding_for(np.zeros(shape, dtype)) == encoding
    assert to_image_msg(np.zeros(shape, dtype)).encoding == encoding


def test_no_default_encoding_for_an_ambiguous_array():
    with pytest.raises(ValueError, match="name one of"):
        to_image_msg(np.zeros((2, 3), np.float64))


def test_array_that_does_not_match_the_encoding_is_refused():
    with pytest.raises(ValueError, match=r"rgb8 needs uint8 elements, the array is float32"):
        to_image_msg(np.zeros((2, 3, 3), np.float32), "rgb8")
    with pytest.raises(ValueError, match=r"mono8 needs 1 channel"):
        to_image_msg(np.zeros((2, 3, 3), np.uint8), "mono8")
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        to_image_msg(np.zeros((2, 3, 3), np.uint8), "yuv422")


def test_stamp_may_be_an_rclpy_time_and_data_is_a_byte_array():
    msg = to_image_msg(rgb(), stamp=RclpyTime(seconds=2, nanoseconds=7))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (2, 7)
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"


def test_padded_rows_are_read_without_the_padding():
    pixels = rgb(3, 4)
    padded = np.zeros((3, 16), np.uint8)  # 12 bytes of pixels + 4 of padding per row
    padded[:, :12] = pixels.reshape(3, 12)
    padded[:, 12:] = 99
    msg = Image(height=3, width=4, encoding="rgb8", step=16, data=padded.tobytes())
    assert np.array_equal(from_image_msg(msg), pixels)


def test_big_endian_mono16_is_swapped_to_native():
    values = np.array([[1, 256, 65535]], np.uint16)
    msg = Image(height=1, width=3, encoding="mono16", is_bigendian=1, step=6, data=values.astype(">u2").tobytes())
    out = from_image_msg(msg)
    assert out.dtype == np.uint16 and out.tolist() == [[1, 256, 65535]]


def test_from_image_msg_returns_a_writable_copy():
    msg = to_image_msg(rgb())
    out = from_image_msg(msg)
    out[:] = 0
    assert out.flags.writeable and any(msg.data)


@pytest.mark.parametrize("fields, why", [
    (dict(encoding="bayer_rggb8"), "unsupported image encoding 'bayer_rggb8'; supported: rgb8"),
    (dict(encoding=""), "unsupported image encoding ''"),
    (dict(data=bytes(5 * 4 * 3 - 1)), r"data holds 59 bytes, but step x height = 15 x 4 = 60"),
    (dict(data=bytes(5 * 4 * 3 + 15)), r"data holds 75 bytes"),
    (dict(step=14), r"step 14 is shorter than one row: 5 px x 3 channel\(s\) x 1 byte\(s\) = 15"),
    (dict(height=0, data=b""), "empty"),
])
def test_malformed_messages_are_refused_with_the_field_at_fault(fields, why):
    base = dict(height=4, width=5, encoding="rgb8", step=15, data=bytes(60))
    with pytest.raises(ValueError, match=why):
        from_image_msg(Image(**{**base, **fields}))


def test_msg_to_rgb8_handles_any_encoding():
    image = rgb()
    assert np.array_equal(msg_to_rgb8(to_image_msg(image, "rgb8")), image)
    assert np.array_equal(msg_to_rgb8(to_image_msg(np.ascontiguousarray(image[..., ::-1]), "bgr8")), image)
    bgra = np.concatenate([image[..., ::-1], np.zeros(image.shape[:2] + (1,), np.uint8)], axis=2)
    assert np.array_equal(msg_to_rgb8(to_image_msg(bgra, "bgra8")), image)
    mono16 = msg_to_rgb8(to_image_msg(np.array([[0, 65535]], np.uint16), "mono16"))
    assert mono16.shape == (1, 2, 3) and mono16[0, 1].tolist() == [255, 255, 255]
    depth = msg_to_rgb8(to_image_msg(np.array([[0.0, 0.5]], np.float32), "32FC1"))
    assert depth[0, :, 0].tolist() == [0, 128]
