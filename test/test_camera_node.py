"""The camera node on the test run's own ROS domain: as a process reading a video file (the
frames it publishes match the file's), reconnecting to a device that appears late, live
parameter changes; in-process with a simulated live camera that unplugs."""
import os
import threading
import time

import cv2
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from hilserl_ros import topics
from hilserl_ros.ros import qos
from hilserl_ros.vision.ros_image import from_image_msg
from ros_harness import wait_for

pytestmark = pytest.mark.ros

MODULE = "hilserl_ros.nodes.camera_node"
LEFT, RIGHT = (200, 30, 60), (20, 80, 220)  # RGB; red and blue differ, so a BGR/RGB swap shows
JPEG_TOLERANCE = 12  # MJPG of a flat colour, chroma subsampled: a few levels off at most


def two_colour_frame(width=160, height=120, left=LEFT, right=RIGHT) -> np.ndarray:
    """RGB: the left half ``left``, the right half ``right``."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:, : width // 2] = left
    frame[:, width // 2:] = right
    return frame


def write_video(path, frames: int = 60, fps: float = 30.0, left=LEFT, right=RIGHT) -> str:
    """An MJPG .avi of ``frames`` two-colour frames, moved into place at once (the node must
    never see a half-written file)."""
    part = f"{path}.part.avi"
    writer = cv2.VideoWriter(part, cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    bgr = cv2.cvtColor(two_colour_frame(left=left, right=right), cv2.COLOR_RGB2BGR)
    for _ in range(frames):
        writer.write(bgr)
    writer.release()
    os.replace(part, path)
    return str(path)


def near(pixel, colour) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= JPEG_TOLERANCE))


def halves(msg):
    """The published image's pixels at the middle of its left and right quarters."""
    pixels = from_image_msg(msg)
    h, w = pixels.shape[:2]
    return pixels[h // 2, w // 4], pixels[h // 2, (3 * w) // 4]


def set_params(ros, client, *params: ParameterMsg):
    return ros.call(client, SetParameters.Request(parameters=list(params))).results


def integer(name, value):
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value))


def integers(name, values):
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY,
                                                        integer_array_value=values))


def start_camera(node_process, device, *extra):
    return node_process(MODULE, "-p", f"device:={device}", "-p", "reconnect_period:=0.2", *extra, name="camera")


# ---------------------------------------------------------------------------- as a process
def test_publishes_the_video_files_frames_as_rgb8_of_the_output_size(tmp_path, node_process, ros):
    video = write_video(tmp_path / "cam.avi")
    started = time.time()
    camera = start_camera(node_process, video, "-p", "output_width:=64", "-p", "output_height:=48")
    peer = ros.node("camera_peer")
    probe = ros.probe(peer, Image, topics.CAMERA_IMAGE, qos.SENSOR)
    messages = probe.wait(5, timeout=30)
    for msg in messages:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 64, 48, 64 * 3)
        assert msg.header.frame_id == topics.CAMERA_FRAME and len(msg.data) == 64 * 48 * 3
        left, right = halves(msg)
        assert near(left, LEFT) and near(right, RIGHT), (left, right)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in messages]
    # wall-clock stamps, in order: taken while the test ran (an order, not a latency: a loaded
    # machine may deliver them late); the slack covers the stamp's rounding only
    assert stamps == sorted(stamps) and started - 0.5 <= stamps[0] and stamps[-1] <= time.time() + 0.5, stamps
    camera.wait_output("capturing 160x120", timeout=30)
    assert camera.stop() == 0  # SIGINT: close() stopped the capture, clean exit


def test_missing_device_warns_once_then_publishes_when_it_appears(tmp_path, node_process, ros):
    late = tmp_path / "late.avi"
    camera = start_camera(node_process, late)
    peer = ros.node("camera_peer")
    probe = ros.probe(peer, Image, topics.CAMERA_IMAGE, qos.SENSOR)
    camera.wait_output("cannot open", timeout=30)
    time.sleep(1.2)  # six more attempts at reconnect_period 0.2 s
    assert camera.proc.poll() is None, camera.output  # still running
    warnings = [line for line in camera.lines if "[WARN]" in line]
    assert len(warnings) == 1, camera.output
    assert f"cannot open {late}: no such file; retrying every 0.2 s" in warnings[0]
    assert not probe.messages

    write_video(late)
    (msg,) = probe.wait(1, timeout=30)[:1]
    left, right = halves(msg)
    assert near(left, LEFT) and near(right, RIGHT)
    camera.wait_output("capturing 160x120", timeout=30)
    camera.wait_output("of retries", timeout=30)


def test_set_parameters_changes_size_crop_and_device_of_later_frames(tmp_path, node_process, ros):
    video = write_video(tmp_path / "cam.avi", frames=300)  # 10 s at 30 Hz: no end of file during the test
    start_camera(node_process, video)
    peer = ros.node("camera_peer")
    probe = ros.probe(peer, Image, topics.CAMERA_IMAGE, qos.SENSOR)
    probe.wait(1, timeout=30, where=lambda m: (m.width, m.height) == (128, 128))  # the default: the policy's input
    client = peer.create_client(SetParameters, "/camera/set_parameters")

    (w, h) = set_params(ros, client, integer("output_width", 32), integer("output_height", 24))
    assert w.successful and h.successful, (w.reason, h.reason)
    since = len(probe.messages)
    resized = probe.wait(3, timeout=30, where=lambda m: (m.width, m.height) == (32, 24))
    later = probe.messages[since + 1:]  # one frame may have been in flight during the call
    assert later and all((m.width, m.height) == (32, 24) for m in later)
    assert all(near(halves(m)[0], LEFT) for m in resized)

    (refused,) = set_params(ros, client, integers("crop", [100, 0, 80, 120]))
    assert not refused.successful and "does not fit inside the 160x120 image" in refused.reason
    (malformed,) = set_params(ros, client, integers("crop", [0, 0, 10]))
    assert not malformed.successful and "4 integers" in malformed.reason

    (crop,) = set_params(ros, client, integers("crop", [80, 0, 80, 120]))  # the right half only
    assert crop.successful, crop.reason
    since = len(probe.messages)
    wait_for(lambda: len(probe.messages) >= since + 4, 30, "frames after the crop")
    for msg in probe.messages[since + 1:]:
        left, right = halves(msg)
        assert near(left, RIGHT) and near(right, RIGHT), (left, right)

    (whole,) = set_params(ros, client, integers("crop", []))  # empty = the whole frame again
    assert whole.successful, whole.reason
    probe.wait(1, timeout=30, where=lambda m: near(halves(m)[0], LEFT))

    swapped = write_video(tmp_path / "swapped.avi", frames=300, left=RIGHT, right=LEFT)
    (device,) = set_params(ros, client, ParameterMsg(name="device", value=ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value=swapped)))
    assert device.successful, device.reason
    probe.wait(1, timeout=30, where=lambda m: near(halves(m)[0], RIGHT) and near(halves(m)[1], LEFT))


def test_malformed_crop_at_start_fails_fast_with_the_reason(tmp_path, node_process):
    camera = start_camera(node_process, tmp_path / "none.avi", "-p", "crop:=[0, 0, 10]")
    wait_for(lambda: camera.proc.poll() is not None, 30, "the node to exit")
    assert camera.proc.returncode == 1
    assert "crop: a crop must be 4 integers" in camera.output  # named at start-up, with the reason


# ---------------------------------------------------------------------------- in-process, simulated camera
class FakeLiveCamera:
    """A cv2.VideoCapture stand-in for a live camera: grab() blocks until the next frame at
    ``fps``; ``unplug`` makes reads and opens fail until ``plug``. Its rate is 50 times the
    node's publish rate: the drain test's ratio (at least 3 grabs per published frame) holds
    with a wide margin when a loaded machine oversleeps each grab."""

    fps = 500.0
    plugged = threading.Event()
    opened: list = []
    released: list = []
    grabs = 0

    def __init__(self, target, backend=None):
        self.is_open = self.plugged.is_set()
        type(self).opened.append(self)

    def isOpened(self):
        return self.is_open

    def set(self, prop, value):
        return False

    def get(self, prop):
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def grab(self):
        time.sleep(1.0 / self.fps)
        type(self).grabs += 1
        return self.is_open and self.plugged.is_set()

    def retrieve(self):
        return True, cv2.cvtColor(two_colour_frame(), cv2.COLOR_RGB2BGR)

    def release(self):
        if self.is_open:
            type(self).released.append(self)
        self.is_open = False


@pytest.fixture
def fake_camera(monkeypatch):
    FakeLiveCamera.plugged.set()
    FakeLiveCamera.opened, FakeLiveCamera.released, FakeLiveCamera.grabs = [], [], 0
    monkeypatch.setattr(cv2, "VideoCapture", FakeLiveCamera)
    return FakeLiveCamera


def test_live_camera_is_drained_at_its_rate_published_at_publish_rate_and_reconnects(fake_camera, ros, capfd):
    from hilserl_ros.nodes.camera_node import CameraNode

    node = ros.add(CameraNode(context=ros.context, parameter_overrides=[
        Parameter("device", value="fake-live"), Parameter("publish_rate", value=10.0),
        Parameter("reconnect_period", value=0.1)]))
    peer = ros.node("camera_peer")
    probe = ros.probe(peer, Image, topics.CAMERA_IMAGE, qos.SENSOR)
    probe.wait(2, timeout=30)
    count, grabs = len(probe.messages), fake_camera.grabs
    probe.wait(count + 5, timeout=30)
    published, grabbed = len(probe.messages) - count, fake_camera.grabs - grabs
    # the camera's queue is drained (every frame grabbed) but only the due frames are published:
    # a ratio, so a slow machine slows both alike (the rates themselves are not test material)
    assert grabbed >= 3 * published, (grabbed, published)

    fake_camera.plugged.clear()  # unplugged: reads fail, reopening fails
    wait_for(lambda: node._outage_since is not None, 30, "the outage to be noticed")
    wait_for(lambda: len(fake_camera.opened) >= 4, 30, "several reconnect attempts")
    assert len(fake_camera.released) == 1
    count = len(probe.messages)
    time.sleep(0.3)
    assert len(probe.messages) <= count + 1  # nothing stale published meanwhile

    fake_camera.plugged.set()
    probe.wait(count + 3, timeout=30)
    node.close()
    assert not node._thread.is_alive()
    assert all(not cap.is_open for cap in fake_camera.opened)  # close() released the camera
    err = capfd.readouterr().err
    assert err.count("lost fake-live: read failed") == 1, err  # one warning for the whole outage
    assert "frames flow again" in err, err
