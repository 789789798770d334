"""The observation description (config/observation): what makes up an observation, the
rules on privileged state, and the fingerprint actor and learner compare."""
import numpy as np
import pytest

from hilserl_ros.observation import (
    CameraSpec,
    ObservationSpec,
    build_observation,
    load_observation,
)


def test_the_shipped_descriptions_load_and_pixels_carry_no_privileged_state():
    for task in ("reach", "pick_cube"):
        state, pixels = load_observation(task, "state"), load_observation(task, "pixels")
        assert state.privileged and state.obs_dim == 15 and not state.cameras
        assert not pixels.privileged and pixels.obs_dim == 9  # joints + EE position
        assert state.fingerprint != pixels.fingerprint
    assert load_observation("reach", "pixels").image_keys == ("front",)
    assert load_observation("pick_cube", "pixels").image_shapes == {"front": (128, 128, 3), "wrist": (128, 128, 3)}


def test_the_state_observation_is_the_one_the_state_policies_were_trained_on():
    spec = load_observation("reach", "state")
    q, ee, goal = np.linspace(-1, 1, 6), np.array([0.2, 0.05, 0.1]), np.array([0.25, -0.05, 0.12])
    np.testing.assert_array_equal(spec.build_state(q, ee, goal), build_observation(q, ee, goal))
    pixels = load_observation("reach", "pixels")
    np.testing.assert_allclose(pixels.build_state(q, ee), np.concatenate([q, 5.0 * ee]), rtol=1e-6)


def test_privileged_keys_are_refused_next_to_cameras_and_on_the_real_arm():
    camera = CameraSpec("front", "/camera/image_raw")
    with pytest.raises(ValueError, match="privileged keys \\['goal'\\]"):
        ObservationSpec("reach", "bad", ("joints", "goal"), (camera,))
    with pytest.raises(ValueError, match="only the simulation knows"):
        load_observation("reach", "state").check_world(use_sim=False)
    load_observation("reach", "pixels").check_world(use_sim=False)  # fine on the real arm
    with pytest.raises(ValueError, match="unknown state keys"):
        ObservationSpec("reach", "bad", ("joints", "cube_pose"))
    with pytest.raises(ValueError, match="no observation 'depth'"):
        load_observation("reach", "depth")


def test_the_fingerprint_changes_with_anything_that_shapes_a_transition():
    base = ObservationSpec("reach", "pixels", ("joints", "ee_position"), (CameraSpec("front", "/a"),))
    same = ObservationSpec("reach", "pixels", ("joints", "ee_position"), (CameraSpec("front", "/b", max_age=1.0),))
    assert base.fingerprint == same.fingerprint  # topics and staleness do not change what is stored
    for other in (ObservationSpec("reach", "pixels", ("ee_position", "joints"), base.cameras),
                  ObservationSpec("reach", "pixels", base.state, (CameraSpec("front", "/a", size=64),)),
                  ObservationSpec("reach", "pixels", base.state, (CameraSpec("front", "/a", crop=(0, 0, 64, 64)),))):
        assert other.fingerprint != base.fingerprint


def test_frames_are_cropped_and_resized_to_the_policy_view_as_uint8():
    camera = CameraSpec("front", "/a", crop=(10, 0, 40, 40), size=16)
    spec = ObservationSpec("reach", "pixels", ("joints",), (camera,))
    frame = np.zeros((48, 64, 3), np.float32)
    frame[:, 10:50] = 1.0  # the crop's columns, as a float [0, 1] camera would give them
    view = spec.process_frame(camera, frame)
    assert view.shape == (16, 16, 3) and view.dtype == np.uint8 and int(view.min()) == 255


def test_compressed_frames_decode_to_rgb_and_garbage_is_refused():
    import cv2
    from sensor_msgs.msg import CompressedImage

    from hilserl_ros.vision.ros_image import compressed_to_rgb8

    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, png = cv2.imencode(".png", rgb[..., ::-1])  # OpenCV encodes BGR
    msg = CompressedImage(format="png", data=png.tobytes())
    np.testing.assert_array_equal(compressed_to_rgb8(msg), rgb)
    with pytest.raises(ValueError, match="does not decode"):
        compressed_to_rgb8(CompressedImage(format="jpeg", data=b"not an image"))
