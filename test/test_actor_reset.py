"""/actor after an episode: a reset whose reply is lost (the server took the request; DDS
dropped the answer) does not stop training for good. The actor waits, says so, and goes on when
the next episode's task state shows the world was reset."""
import time

import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.msg import TaskState, Transition
from hilserl_ros.ros import qos
from ros_harness import ForgetfulServer, wait_for

pytestmark = pytest.mark.ros


def test_a_lost_reset_reply_is_waited_out_until_the_next_episode_starts(ros, tmp_path):
    from hilserl_ros.nodes import actor_node

    reset = ForgetfulServer(Trigger, topics.SIM_RESET, drop=1000, answer=lambda req: Trigger.Response(success=True))
    try:
        actor = ros.add(actor_node.ActorNode(context=ros.context, parameter_overrides=[
            Parameter("use_sim", value=True), Parameter("lockstep", value=False), Parameter("act_without_weights", value=True),
            Parameter("spool_dir", value=str(tmp_path / "spool")), Parameter("control_rate", value=20.0)]))
        warnings = []
        logger = actor.get_logger()
        real_warning = logger.warning
        actor.get_logger = lambda: logger
        logger.warning = lambda text, *a, **k: warnings.append(text) or real_warning(text, *a, **k)
        peer = ros.node("cell")
        sent = ros.probe(peer, Transition, topics.TRANSITIONS, qos.TRANSITIONS)
        joints = peer.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
        pose = peer.create_publisher(PoseStamped, topics.EE_POSE, qos.EVENTS)
        task = peer.create_publisher(TaskState, topics.TASK_STATE, qos.EVENTS)
        wait_for(lambda: actor.reset_client.service_is_ready(), 30, "the reset service")

        def publish(episode: int, failure: bool = False) -> None:
            stamp = peer.get_clock().now().to_msg()
            joints.publish(JointState(name=list(JOINT_NAMES), position=[0.1] * 6))
            msg = PoseStamped()
            msg.header.stamp = stamp
            msg.pose.position.x, msg.pose.position.z = 0.2, 0.1
            pose.publish(msg)
            state = TaskState(task="reach", episode=episode, failure=failure, reason="button" if failure else "")
            state.header.stamp = stamp
            task.publish(state)

        def publish_until(done, episode: int, failure: bool, timeout: float, what: str) -> None:
            def once():
                publish(episode, failure)
                return done()
            wait_for(once, timeout, what, period=0.05)

        publish_until(lambda: any(t.episode == 1 for t in sent.messages), 1, False, 30, "steps of episode 1")
        publish_until(lambda: reset.taken, 1, True, 30, "the failure to end episode 1 and ask for a reset")
        # the reply never comes and episode 1's states go on: the actor takes no step
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            publish(1)
            time.sleep(0.05)
        assert actor.resetting and not any(t.episode == 2 for t in sent.messages)
        # the next episode's task state stands in for the lost reply
        publish_until(lambda: any(t.episode == 2 for t in sent.messages), 2, False, 30, "steps of episode 2")
        assert len(reset.taken) == 1  # asked once: a reset is not sent twice
        assert any("the reply was lost" in w and "episode 2" in w for w in warnings), warnings
    finally:
        reset.close()
