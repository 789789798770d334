"""OpenCV camera publisher (/camera), for the real arm (in simulation the sim renders the view).

Captures from ``device`` with ``cv2.VideoCapture``: an index ("0" -> /dev/video0), a device
path (``/dev/video2``, a stable ``/dev/v4l/by-id/...`` link), a video file or a stream URL.
Each frame is cropped (``crop``), resized to the policy's input (``output_width`` x
``output_height``, 128x128 by default), converted BGR -> RGB and to uint8
(``hilserl_ros.vision.images``), and published as sensor_msgs/Image ``rgb8`` on
/camera/image_raw with the SENSOR QoS (best effort: a late frame is worthless), stamped with
the node clock when the frame was grabbed.

Capture runs in its own thread, so a blocking read never stalls the executor (parameter
services keep answering). A live camera is read at its own rate and only the frames due at
``publish_rate`` are decoded and published (the driver's queue stays drained, so frames are
fresh); a video file is played at ``publish_rate``.

Reconnection: when the device cannot be opened or a read fails (unplugged camera, dropped
stream, the end of a video file), the capture is released, ONE warning says what failed, and
the node retries every ``reconnect_period`` until frames flow again, which it logs. It never
publishes stale frames meanwhile and never exits for a lost camera.

Live parameters: ``crop``, ``output_width``, ``output_height``, ``frame_id`` apply to the
next frame; ``device``, ``width``, ``height``, ``fps`` reopen the capture. A crop that does not
fit the frames the camera delivers is refused with a reason.
"""
from __future__ import annotations

import os
import re
import threading
import time
import traceback
from dataclasses import dataclass, replace

import cv2
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from sensor_msgs.msg import Image

from hilserl_ros import topics
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node, start_worker
from hilserl_ros.ros.validation import DropCounter
from hilserl_ros.vision.images import crop_error, crop_resize, to_uint8
from hilserl_ros.vision.ros_image import to_image_msg

NO_CROP = [0, 0, 0, 0]


def _device_error(value) -> str | None:
    return None if str(value).strip() else "must name a camera: an index like \"0\", a path or a URL"


def _crop_form_error(value) -> str | None:
    if list(value) in ([], NO_CROP):
        return None
    return crop_error(value)


def _frame_id_error(value) -> str | None:
    return None if str(value).strip() else "must not be empty: every stamped message names its frame"


PARAMS = [
    ParamSpec("device", "0", "OpenCV camera: an index (\"0\"), a device path, a video file or a stream URL; "
              "a string (write \"0\" in YAML, -p 'device:=\"0\"' on a command line)", validator=_device_error),
    ParamSpec("width", 0, "requested capture width; 0 = driver default", min=0, max=7680, unit="px"),
    ParamSpec("height", 0, "requested capture height; 0 = driver default", min=0, max=4320, unit="px"),
    ParamSpec("fps", 0.0, "requested capture rate; 0 = driver default", min=0.0, max=240.0, unit="Hz"),
    # [0, 0, 0, 0] rather than []: rclpy types an empty default as a byte array, and then
    # refuses every [x, y, w, h] set later
    ParamSpec("crop", list(NO_CROP), "region of the captured frame kept, [x, y, w, h] (x right, y down from the "
              "top-left corner); [] or [0, 0, 0, 0] = the whole frame", validator=_crop_form_error, unit="px"),
    ParamSpec("output_width", 128, "published image width (the policy's input)", min=1, max=4096, unit="px"),
    ParamSpec("output_height", 128, "published image height (the policy's input)", min=1, max=4096, unit="px"),
    ParamSpec("frame_id", topics.CAMERA_FRAME, "frame_id of the published images", validator=_frame_id_error),
    ParamSpec("publish_rate", 30.0, "largest publish rate (a live camera may deliver fewer frames); "
              "the playback rate of a video file", min=0.1, max=120.0, unit="Hz"),
    ParamSpec("reconnect_period", 1.0, "seconds between attempts to reopen a lost camera", min=0.05, max=30.0,
              unit="s"),
]


@dataclass(frozen=True)
class Geometry:
    """What happens to each frame; swapped as a whole so a frame never sees half a change."""

    crop: tuple[int, int, int, int] | None
    size: tuple[int, int]
    frame_id: str


@dataclass(frozen=True)
class Source:
    """How to open ``device`` with OpenCV."""

    device: str
    target: int | str  # what cv2.VideoCapture gets
    backend: int
    label: str  # for log lines
    is_file: bool  # a regular file: played at publish_rate, its end is a lost device

    @staticmethod
    def parse(device: str) -> "Source":
        device = device.strip()
        if device.isdigit():
            return Source(device, int(device), cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY,
                          f"camera index {device}", False)
        # a V4L2 node, also through a /dev/v4l/by-id link: open it by index (this OpenCV's
        # V4L2 backend does not open devices by name)
        match = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(device))
        if match:
            return Source(device, int(match.group(1)), cv2.CAP_V4L2, f"{device} (V4L2 index {match.group(1)})",
                          False)
        return Source(device, device, cv2.CAP_ANY, device, os.path.isfile(device))

    def why_not_openable(self) -> str:
        """A guess at why opening failed, for the warning."""
        if isinstance(self.target, int):
            node = f"/dev/video{self.target}"
            return f"{node} does not exist" if not os.path.exists(node) else f"{node} exists but did not open (busy?)"
        if "://" not in self.device and not os.path.exists(self.device):
            return "no such file"
        return "OpenCV could not open it"


def _quiet_opencv() -> None:
    # OpenCV logs its own warning at every failed open or read; the node says what failed
    # once per outage instead. OPENCV_LOG_LEVEL, when set, still wins (for debugging).
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class CameraNode(Node):
    def __init__(self, **node_options):
        super().__init__("camera", **node_options)
        _quiet_opencv()
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._outage_since: float | None = None  # monotonic time the current outage began
        self._ever_flowed = False
        self.frame_size: tuple[int, int] | None = None  # (w, h) of the frames the camera delivers
        self.frames_published = 0
        # the crop's fit is checked against the frames the camera delivers, known only here
        specs = [replace(s, validator=self._check_crop) if s.name == "crop" else s for s in PARAMS]
        self.params = declare(self, specs)
        for spec in specs:  # validators see SetParameters calls only: check the start values too
            if spec.validator is not None:
                value = list(self._crop_value() or []) if spec.name == "crop" else self.params[spec.name]
                reason = spec.validator(value)
                if reason:
                    raise ValueError(f"parameter {spec.name}: {reason}")
        self.pub = self.create_publisher(Image, topics.CAMERA_IMAGE, qos.SENSOR)
        self.drops = DropCounter(self.get_logger(), "camera frame")
        self.geometry = self._read_geometry()
        for name in ("crop", "output_width", "output_height", "frame_id"):
            self.params.on_change(name, lambda _value: self._update_geometry())
        for name in ("device", "width", "height", "fps"):
            self.params.on_change(name, lambda _value: self._reopen.set())
        self._thread = start_worker(self, self._run, "camera_capture")  # its death is the node's

    # ------------------------------------------------------------------ parameters
    def _crop_value(self) -> tuple[int, int, int, int] | None:
        try:
            value = list(self.params["crop"])
        except ParameterUninitializedException:  # `crop: []` in YAML or -p crop:=[] leaves it unset
            return None
        return None if value in ([], NO_CROP) else tuple(int(v) for v in value)

    def _check_crop(self, value) -> str | None:
        reason = _crop_form_error(value)
        if reason or list(value) in ([], NO_CROP) or self.frame_size is None:
            return reason
        return crop_error(value, *self.frame_size)

    def _read_geometry(self) -> Geometry:
        return Geometry(self._crop_value(), (self.params["output_width"], self.params["output_height"]),
                        self.params["frame_id"])

    def _update_geometry(self) -> None:
        # all parameters of one SetParameters call are in place when the handlers run
        self.geometry = self._read_geometry()

    # ------------------------------------------------------------------ capture thread
    def _run(self) -> None:
        self._cap = None  # the capture and its source belong to this thread
        self._source: Source | None = None
        self._next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    self._capture_once()
                except Exception as err:  # a bug or an odd backend: treated as an outage, the node stays up
                    self._release()
                    self.get_logger().debug(traceback.format_exc())
                    self._lost(f"capture failed: {type(err).__name__}: {err}")
        finally:
            self._release()

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _capture_once(self) -> None:
        """Open if needed, grab one frame, publish it if it is due."""
        if self._reopen.is_set():
            self._reopen.clear()
            if self._cap is not None:
                self.get_logger().info(f"capture settings changed: reopening {self._source.label}")
                self._release()
        if self._cap is None:
            self._source = Source.parse(self.params["device"])
            self._cap = self._open(self._source)
            if self._cap is None:
                self._lost(f"cannot open {self._source.label}: {self._source.why_not_openable()}")
                return
            self._next_due = time.monotonic()
        source, cap = self._source, self._cap
        if source.is_file:  # a file does not block: pace it like a camera
            if self._stop.wait(max(0.0, self._next_due - time.monotonic())):
                return
        if not cap.grab():
            self._release()
            what = "end of the video file" if source.is_file else "read failed (unplugged? stream dropped?)"
            self._lost(f"lost {source.label}: {what}")
            return
        now = time.monotonic()
        if now < self._next_due:
            return  # a live camera: this frame is not due, but grabbing it keeps the driver's queue fresh
        period = 1.0 / self.params["publish_rate"]
        # keep the rate, without a burst of catch-up frames after a stall
        self._next_due = self._next_due + period if now - self._next_due < period else now + period
        stamp = self.get_clock().now()
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            self._release()
            self._lost(f"lost {source.label}: a grabbed frame could not be decoded")
            return
        self._flowing(source, cap, frame)
        self._publish(frame, stamp)

    def _open(self, source: Source):
        try:
            cap = cv2.VideoCapture(source.target, source.backend)
        except cv2.error:  # some backends raise for a malformed URL instead of failing to open
            return None
        if not cap.isOpened():
            cap.release()
            return None
        # requests only: the driver picks the nearest mode it has, logged once frames flow
        if self.params["width"] > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.params["width"])
        if self.params["height"] > 0:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.params["height"])
        if self.params["fps"] > 0:
            cap.set(cv2.CAP_PROP_FPS, self.params["fps"])
        return cap

    def _lost(self, reason: str) -> None:
        """One warning per outage; later failures of the same outage only at debug level."""
        period = self.params["reconnect_period"]
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.get_logger().warning(f"{reason}; retrying every {period:g} s "
                                      "(logged once until frames flow again)")
        else:
            self.get_logger().debug(reason)
        self._stop.wait(period)

    def _flowing(self, source: Source, cap, frame) -> None:
        """Log the first frame, the end of an outage and a change of frame size, once each."""
        size = (frame.shape[1], frame.shape[0])
        if self._ever_flowed and self._outage_since is None and size == self.frame_size:
            return
        fps = cap.get(cv2.CAP_PROP_FPS)
        what = f"{size[0]}x{size[1]}" + (f" at {fps:g} fps" if fps > 0 else "") + f" from {source.label}"
        if not self._ever_flowed:
            out = self.geometry.size
            waited = (f" after {time.monotonic() - self._outage_since:.1f} s of retries"
                      if self._outage_since is not None else "")
            self.get_logger().info(f"capturing {what}{waited}; publishing {out[0]}x{out[1]} rgb8 on "
                                   f"{topics.CAMERA_IMAGE} at up to {self.params['publish_rate']:g} Hz")
        elif self._outage_since is not None:
            self.get_logger().info(f"frames flow again: {what}, after "
                                   f"{time.monotonic() - self._outage_since:.1f} s without frames")
        else:
            self.get_logger().info(f"frame size changed: {what}")
        self.frame_size = size
        self._outage_since = None
        self._ever_flowed = True

    def _publish(self, frame, stamp) -> None:
        geometry = self.geometry
        try:
            pixels = crop_resize(frame, geometry.crop, geometry.size)
        except ValueError as err:  # e.g. a crop from the parameter file larger than the frames
            self.drops.drop(str(err))
            return
        if pixels.ndim == 3 and pixels.shape[2] >= 3:
            pixels = pixels[:, :, 2::-1]  # OpenCV delivers BGR(A)
        msg = to_image_msg(to_uint8(pixels), "rgb8", frame_id=geometry.frame_id, stamp=stamp)
        if not self._stop.is_set():
            self.pub.publish(msg)
            self.frames_published += 1

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop the capture thread; it releases the camera on its way out."""
        self._stop.set()
        self._thread.join(timeout=3.0)
        if self._thread.is_alive():  # blocked inside a driver read; it releases on return
            self.get_logger().warning("capture thread still blocked in a read after 3 s; leaving it to exit")


def main():
    return run_node(CameraNode)


if __name__ == "__main__":
    raise SystemExit(main())
