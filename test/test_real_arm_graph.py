"""The real-arm graph (use_sim:=false) runs whole episodes without the simulation's task state.

The "cell" stands in for the physical world: the MuJoCo SO-101 behind an emulated servo bus on
a pseudo-terminal (the driver opens it as its serial port: `port:=`), and its cameras rendered
onto the real camera topics in wall time. Its own task state and reset service are remapped
away (/cell/...): the graph never sees them. The graph is the one `ros2 launch ... use_sim:=false`
starts: driver, IK, the joystick's intervention node (a scripted /joy here), the task node, the
reward classifier, the actor and the learner.

One run, in order: the arm goes home slowly (rate-limited commands through the driver), START
begins an episode, the policy steps, the operator takes over, the success button ends it with
HIL-SERL's reward, transitions with both cameras reach the learner and weights come back; then
the reward classifier ends an episode (its threshold set live), the operator vetoes that
success and the classifier learns it, and a camera that disappears stops an episode with the
reason instead of acting blind. When the graph stops (Ctrl-C), the arm's torque goes off."""
import time

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState, Joy

from hilserl_ros import topics
from hilserl_ros.kinematics import SO101Kinematics
from hilserl_ros.learning import reward_classifier as rc
from hilserl_ros.msg import (EpisodeStats, PolicyWeights, RewardVeto, SuccessPrediction, TaskState, Transition,
                             TransitionAck)
from hilserl_ros.nodes.task_node import RESET_FRAME
from hilserl_ros.ros import qos
from ros_harness import RosSession, launched_graph, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]

START, SUCCESS, FAILURE, DEADMAN = 3, 0, 1, 5  # buttons of config/intervention.yaml: Y, A, B, RB
RESET_SPEED = 0.5  # rad/s, config/task.yaml
BOX_MIN, BOX_MAX = (0.13, -0.12, 0.025), (0.28, 0.12, 0.12)  # config/tasks/pick_cube.yaml


def double(name: str, value: float) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def integer(name: str, value: int) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value))


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    data = rc.collect_sim("pick_cube", 8, seed=5, progress=False)
    model, _ = rc.train(data, held_out=0.0, epochs=50)
    return model.save(str(tmp_path_factory.mktemp("classifier") / "reward_classifier.safetensors"))


def test_the_real_arm_graph_runs_episodes_judged_by_buttons_and_the_classifier(tmp_path, node_process,
                                                                                classifier_file):
    link = str(tmp_path / "so101_bus")
    cell = node_process("hilserl_ros.nodes.sim_node", "-p", "task:=pick_cube", "-p", "lockstep:=false",
                        "-p", f"sim_port:={link}", "-r", f"{topics.TASK_STATE}:=/cell/truth",
                        "-r", f"{topics.SIM_RESET}:=/cell/reset", "-r", f"{topics.CLOCK}:=/cell/clock")
    cell.wait_output("servo bus on", timeout=60)
    cameras = node_process("hilserl_ros.nodes.sim_camera_node", "-p", "task:=pick_cube", "-p", "observation:=pixels",
                           "-p", "lockstep:=false", "-p", "render_rate:=10.0",
                           "-r", f"{topics.TASK_STATE}:=/cell/truth", env={"MUJOCO_GL": "egl"})
    with launched_graph(tmp_path, "use_sim:=false", f"port:={link}", "task:=pick_cube", "camera:=none",
                        "reward:=both", f"reward_model:={classifier_file}", "foxglove:=false", "gamepad:=false",
                        "robot_state_publisher:=false") as lines:
        session = RosSession()
        peer = session.node("real_arm_probe")
        try:
            task = session.probe(peer, TaskState, topics.TASK_STATE, qos.EVENTS)
            episodes = session.probe(peer, EpisodeStats, topics.EPISODE_STATS, qos.EVENTS)
            sent = session.probe(peer, Transition, topics.TRANSITIONS, qos.TRANSITIONS)
            acks = session.probe(peer, TransitionAck, topics.TRANSITION_ACKS, qos.EVENTS)
            weights = session.probe(peer, PolicyWeights, topics.POLICY_WEIGHTS, qos.LATCHED)
            commands = session.probe(peer, JointState, topics.JOINT_COMMANDS, qos.EVENTS)
            predictions = session.probe(peer, SuccessPrediction, topics.REWARD_PREDICTION, qos.EVENTS)
            vetoes = session.probe(peer, RewardVeto, topics.REWARD_VETO, qos.EVENTS)
            poses = session.probe(peer, PoseStamped, topics.EE_POSE, qos.EVENTS)
            joy_pub = peer.create_publisher(Joy, topics.JOY, qos.SENSOR)
            params = {node: peer.create_client(SetParameters, f"/{node}/set_parameters")
                      for node in ("reward_classifier", "learner", "task")}

            def set_param(node: str, param: Parameter) -> None:
                wait_for(lambda: params[node].service_is_ready(), 120, f"/{node}/set_parameters")
                result = session.call(params[node], SetParameters.Request(parameters=[param]), timeout=20)
                assert result.results[0].successful, result.results[0].reason

            def joy(buttons=(), stick=0.0) -> None:
                msg = Joy(axes=[0.0] * 8, buttons=[0] * 12)
                msg.axes[1] = stick
                for b in buttons:
                    msg.buttons[b] = 1
                msg.header.stamp = peer.get_clock().now().to_msg()
                joy_pub.publish(msg)

            def press(button: int) -> None:
                joy((button,))
                time.sleep(0.15)
                joy()
                time.sleep(0.15)

            def press_until(button: int, done, timeout: float, what: str) -> None:
                # a press a loaded machine delays or drops is pressed again, as a person would
                def pressed():
                    if done():
                        return True
                    press(button)
                    return done()
                wait_for(pressed, timeout, what, period=0.5)

            def start_episode(number: int) -> None:
                # the arm must be home first; START is pressed until the episode runs
                press_until(START, lambda: any(m.episode == number for m in task.messages), 120,
                            f"episode {number} to start on START")

            set_param("reward_classifier", double("threshold", 1.0))  # it never says success yet
            set_param("learner", integer("training_starts", 10))
            # a loaded CI machine renders the cell's cameras late now and then: only an outage
            # longer than this stops an episode
            set_param("task", double("classifier_timeout", 1.5))
            set_param("task", double("veto_window", 10.0))  # the operator's FAILURE after a claimed success
            wait_for(lambda: predictions.messages, 60, "the reward classifier's predictions")

            # 1. the arm goes home at start (it starts there in the cell), then START
            start_episode(1)

            # 2. the policy steps, 3. the operator takes over
            wait_for(lambda: sum(t.episode == 1 for t in sent.messages) >= 5, 60, "policy steps of episode 1")
            for _ in range(40):
                joy((DEADMAN,), stick=1.0)
                time.sleep(0.05)
            joy()
            wait_for(lambda: any(t.is_intervention for t in sent.messages), 30, "an intervention step")
            # 4. the success button ends it with the sparse reward
            press_until(SUCCESS, lambda: any(e.episode == 1 for e in episodes.messages), 60, "episode 1 to end")
            first = next(e for e in episodes.messages if e.episode == 1)
            assert first.success and "success button" in first.end_reason and first.intervention_steps > 0
            last = [t for t in sent.messages if t.episode == 1][-1]
            assert last.terminated and last.reward == pytest.approx(1.0)
            assert len(last.next_images) == 2
            for t in sent.messages:
                assert [(i.width, i.height) for i in t.images] == [(128, 128)] * 2
                assert len(t.observation) == 9  # joints and EE: nothing the real arm does not know
            # the learner took them and weights come back
            wait_for(lambda: any(a.received_seq >= last.seq for a in acks.messages), 60, "the learner's ack")
            wait_for(lambda: any(w.version >= 1 for w in weights.messages), 120, "new weights from the learner")

            # safety held for every command: joint targets within the URDF limits, and the EE (the
            # operator pushed forward for 2 s, 40 cm worth of commands) inside the workspace box
            kin = SO101Kinematics()
            for c in commands.messages:
                q = np.array(c.position)
                assert np.all(q >= kin.lower - 1e-6) and np.all(q <= kin.upper + 1e-6), c
            # (while the episode ran: the way home after it is a joint-space line the box does not bound)
            ended = first.header.stamp.sec + 1e-9 * first.header.stamp.nanosec
            reached = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in poses.messages
                                if p.header.stamp.sec + 1e-9 * p.header.stamp.nanosec <= ended])
            assert len(reached) > 10
            assert np.all(reached <= np.array(BOX_MAX) + 0.015) and np.all(reached >= np.array(BOX_MIN) - 0.015), \
                (reached.min(axis=0), reached.max(axis=0))

            # the way home after episode 1 (the operator moved the arm): slow, in periods of 0.1 s
            wait_for(lambda: sum(c.header.frame_id == RESET_FRAME for c in commands.messages) > 12, 60, "the way home")
            home = [c for c in commands.messages if c.header.frame_id == RESET_FRAME]
            steps = [np.abs(np.subtract(b.position, a.position)).max() for a, b in zip(home, home[1:])
                     if (b.header.stamp.sec + 1e-9 * b.header.stamp.nanosec)
                     - (a.header.stamp.sec + 1e-9 * a.header.stamp.nanosec) < 0.2]
            assert len(steps) > 10 and max(steps) <= RESET_SPEED / 10.0 + 1e-6 and max(steps) > 0.0

            # 5. the classifier ends episode 2 (threshold 0: any frame is a success)
            set_param("reward_classifier", double("threshold", 0.0))
            start_episode(2)
            wait_for(lambda: any(e.episode == 2 for e in episodes.messages), 60, "episode 2 to end")
            second = next(e for e in episodes.messages if e.episode == 2)
            assert second.success and "classifier p=" in second.end_reason
            # the operator disagrees: FAILURE right after is a veto, and the classifier learns it
            press_until(FAILURE, lambda: vetoes.messages, 30, "the task node's veto")
            assert vetoes.messages[0].probability >= 0.0 and vetoes.messages[0].model.startswith("reward_classifier")
            wait_for(lambda: any(m.vetoes == 1 and m.hard_negatives >= 1 for m in predictions.messages), 60,
                     "predictions of the classifier retrained on the veto")
            retrained = rc.RewardClassifier.load(classifier_file.replace(".safetensors", ".vetoed.safetensors"))
            assert retrained.info["vetoes"] == 1 and retrained.info["hard_negatives"] >= 1
            assert len(retrained.training_set[0]) == len(rc.RewardClassifier.load(classifier_file).training_set[0]) \
                + retrained.info["hard_negatives"]

            # 6. a camera goes away during episode 3: stopped, with the reason
            set_param("reward_classifier", double("threshold", 1.0))
            start_episode(3)
            wait_for(lambda: sum(t.episode == 3 for t in sent.messages) >= 2, 60, "policy steps of episode 3")
            cameras.stop()
            wait_for(lambda: any(e.episode == 3 for e in episodes.messages), 30, "episode 3 to stop")
            third = next(e for e in episodes.messages if e.episode == 3)
            assert not third.success and "silent for" in third.end_reason, third.end_reason
            assert any("no fresh frame of camera" in line for line in lines)
            cell.wait_output("servo bus: torque on")
            before_stop = len(cell.lines)
        except Exception:
            # what the graph said (the task node's reasons, the driver's faults): a failure here
            # under CI load must be diagnosable from its log alone
            print("\n".join(["--- the graph's last lines:", *lines[-150:], "--- the cell's last lines:",
                              *cell.lines[-40:]]))
            raise
        finally:
            session.close()
    # the graph stopped as on Ctrl-C: the driver turned the arm's torque off on its way out
    wait_for(lambda: any("servo bus: torque off" in line for line in cell.lines[before_stop:]), 30,
             "torque off after the graph's Ctrl-C")
    assert not any("Traceback" in line for line in lines), "\n".join(lines[-80:])
