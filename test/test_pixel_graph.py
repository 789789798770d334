"""The training graph with camera observations (observation:=pixels, pick_cube: front and
wrist cameras, no cube position): the simulated cameras render each control step, the actor
acts on the frames and sends each one once, the learner takes every transition, and the
policy's views are published for Foxglove and RViz."""
import pytest
from sensor_msgs.msg import Image

from hilserl_ros import topics
from hilserl_ros.msg import EpisodeStats, LearnerStats, Transition
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos
from ros_harness import RosSession, launched_graph, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def pixel_graph(tmp_path_factory):
    run = tmp_path_factory.mktemp("pixel_graph")
    with launched_graph(run, "task:=pick_cube", "observation:=pixels", "time_scale:=3.0", "foxglove:=false") as lines:
        session = RosSession()
        peer = session.node("pixel_graph_probe")
        probes = {
            "transitions": session.probe(peer, Transition, topics.TRANSITIONS, qos.TRANSITIONS),
            "episodes": session.probe(peer, EpisodeStats, topics.EPISODE_STATS, qos.EVENTS),
            "stats": session.probe(peer, LearnerStats, topics.LEARNER_STATS, qos.EVENTS),
            "front": session.probe(peer, Image, topics.POLICY_VIEW_FRONT, qos.SENSOR),
            "wrist": session.probe(peer, Image, topics.POLICY_VIEW_WRIST, qos.SENSOR),
        }
        try:
            probes["episodes"].wait(3, timeout=300)
            yield probes, lines
        finally:
            session.close()


def test_transitions_carry_each_camera_frame_once_and_no_cube_position(pixel_graph):
    probes, _ = pixel_graph
    spec = load_observation("pick_cube", "pixels")
    sent = probes["transitions"].wait(51, timeout=120)
    for t in sent:
        assert t.observation_spec == spec.fingerprint and len(t.observation) == spec.obs_dim == 9
        assert [(i.width, i.height, i.encoding) for i in t.images] == [(128, 128, "rgb8")] * 2
        # s_{t+1}'s frames come with the next transition, except at an episode's end
        assert len(t.next_images) == (2 if (t.terminated or t.truncated) else 0)
    # the frames follow the arm: consecutive steps of an episode do not show the same picture
    same = sum(a.images[1].data == b.images[1].data for a, b in zip(sent, sent[1:]) if a.episode == b.episode)
    assert same < 0.5 * len(sent)


def test_the_learner_takes_every_pixel_transition(pixel_graph):
    probes, _ = pixel_graph
    # training started on them: the newest statistics may predate the episodes seen so far
    stats = probes["stats"].wait(1, timeout=180,
                                 where=lambda m: m.transitions_received >= 300 and m.update_step > 0)[-1]
    assert stats.transitions_dropped == 0 and stats.sequence_gaps == 0


def test_the_policy_views_are_published_and_the_cameras_keep_up(pixel_graph):
    probes, lines = pixel_graph
    for name in ("front", "wrist"):
        view = probes[name].wait(5, timeout=30)[-1]
        assert (view.width, view.height, view.encoding) == (128, 128, "rgb8")
    rendering = "rendering front on /camera/image_raw, wrist on /camera/wrist/image_raw"
    wait_for(lambda: any(rendering in line for line in lines), 60, "the camera node's start-up line")
    text = "\n".join(lines)
    assert "step skipped" not in text or text.count("step skipped") <= 3  # frames were almost always there
