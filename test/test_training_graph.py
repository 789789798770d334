"""The whole simulated training graph, started by the project launcher, runs episodes: every
transition reaches the learner, weights reach the actor, interventions are flagged and kept as
demonstrations, knobs change live, bad input is dropped, and the watchdog speaks up."""
import math
import re

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from hilserl_ros import topics
from hilserl_ros.msg import EpisodeStats, LearnerStats, PolicyWeights, Transition
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos
from ros_harness import RosSession, launched_graph, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    run = tmp_path_factory.mktemp("graph")
    with launched_graph(run, "time_scale:=3.0", "foxglove:=false") as lines:
        session = RosSession()
        peer = session.node("graph_probe")
        probes = {
            "transitions": session.probe(peer, Transition, topics.TRANSITIONS, qos.TRANSITIONS),
            "episodes": session.probe(peer, EpisodeStats, topics.EPISODE_STATS, qos.EVENTS),
            "stats": session.probe(peer, LearnerStats, topics.LEARNER_STATS, qos.EVENTS),
            "weights": session.probe(peer, PolicyWeights, topics.POLICY_WEIGHTS, qos.LATCHED),
        }
        setter = peer.create_client(SetParameters, "/learner/set_parameters")
        try:
            probes["episodes"].wait(4, timeout=240)
            yield session, peer, probes, setter, lines
        finally:
            session.close()


def set_param(session, setter, name, value):
    kind = ParameterType.PARAMETER_INTEGER if isinstance(value, int) else ParameterType.PARAMETER_DOUBLE
    pv = ParameterValue(type=kind, **({"integer_value": value} if isinstance(value, int) else {"double_value": value}))
    (result,) = session.call(setter, SetParameters.Request(parameters=[Parameter(name=name, value=pv)])).results
    return result


def test_episodes_run_and_log_as_the_field_report_asks(graph):
    *_, probes, _, lines = graph
    episodes = probes["episodes"].messages
    assert [e.episode for e in episodes[:4]] == [1, 2, 3, 4]
    # the log lines come through the launcher's pipe, which may lag the messages
    for pattern in (r"\[ACTOR\] Episode 1 done \| step=\d+ \| reward=-?\d+\.\d\d",
                    r"\[LEARNER\] Episode 1 \| step=\d+ \| reward=-?\d+\.\d\d \| intervention=\d+\.\d%"):
        wait_for(lambda: re.search(pattern, "\n".join(lines)), 60, f"/{pattern}/ in the graph's output")


def test_every_transition_reaches_the_learner_without_gaps(graph):
    session, _, probes, _, _ = graph
    sent = probes["transitions"].messages
    seqs = [t.seq for t in sent]
    assert seqs[: len(seqs)] == list(range(seqs[0], seqs[0] + len(seqs)))  # the probe saw them in order
    # training started on them: the newest statistics may predate the episodes seen so far
    stats = probes["stats"].wait(1, timeout=120, where=lambda m: m.transitions_received >= 300)[-1]
    assert stats.sequence_gaps == 0


def test_interventions_are_flagged_and_kept_as_demonstrations(graph):
    _, _, probes, _, _ = graph
    wait_for(lambda: {t.is_intervention for t in probes["transitions"].messages} == {True, False}, 120,
             "transitions with and without an intervention")
    stats = probes["stats"].wait(1, timeout=120)[-1]
    received = stats.transitions_received
    # the probe may lag the learner: wait until it has caught up with what the statistics count
    # (one reliable writer: its transitions arrive in order)
    wait_for(lambda: max((t.seq for t in probes["transitions"].messages if t.actor_id == "actor"), default=0)
             >= received, 60, f"the probe to see the {received} transitions the learner received")
    sent = probes["transitions"].messages
    flagged = sum(t.is_intervention and not t.command_late for t in sent if t.seq <= received)
    assert stats.demo_buffer_size == flagged


def test_the_actor_acts_with_the_weights_the_learner_publishes(graph):
    _, _, probes, _, _ = graph
    wait_for(lambda: any(e.policy_version > 0 for e in probes["episodes"].messages), 120,
             "an episode run with trained weights")
    assert max(w.version for w in probes["weights"].messages) > 0


def test_target_entropy_set_live_shows_in_the_next_statistics(graph):
    session, _, probes, setter, _ = graph
    result = set_param(session, setter, "target_entropy", -3.0)
    assert result.successful, result.reason
    n = len(probes["stats"].messages)
    probes["stats"].wait(n + 2, timeout=60)
    assert probes["stats"].messages[-1].target_entropy == pytest.approx(-3.0)
    refused = set_param(session, setter, "target_entropy", math.nan)
    assert not refused.successful and refused.reason


def test_bad_transitions_are_dropped_and_the_learner_keeps_going(graph):
    session, peer, probes, _, lines = graph
    pub = peer.create_publisher(Transition, topics.TRANSITIONS, qos.TRANSITIONS)
    session.wait_for_subscribers(pub, count=1)
    before = probes["stats"].wait(1, timeout=120)[-1].transitions_dropped
    state = load_observation("reach", "state").fingerprint
    pub.publish(Transition(actor_id="saboteur", seq=1, observation=[math.nan] * 15, next_observation=[0.0] * 15,
                           action=[0.0] * 4, observation_spec=state))
    pub.publish(Transition(actor_id="saboteur", seq=2, observation=[0.0] * 3, next_observation=[0.0] * 3,
                           action=[0.0] * 4, observation_spec=state))
    pixels = load_observation("reach", "pixels").fingerprint  # a pixel actor talking to this state learner
    pub.publish(Transition(actor_id="saboteur", seq=3, observation=[0.0] * 9, next_observation=[0.0] * 9,
                           action=[0.0] * 4, observation_spec=pixels))
    wait_for(lambda: probes["stats"].messages[-1].transitions_dropped >= before + 3, 60, "the drops to be counted")
    # the log lines come through the launcher's pipe, which may lag the statistics
    wait_for(lambda: any("dropped a transition: observation[0] is nan" in line for line in lines), 60,
             "the NaN drop in the log")
    wait_for(lambda: any(f"observation {pixels} is not the learner's {state}" in line for line in lines), 60,
             "the foreign observation's drop in the log")
    n = len(probes["stats"].messages)
    probes["stats"].wait(n + 3, timeout=60)  # still training


def test_the_alpha_collapse_watchdog_fires(graph):
    session, _, probes, setter, lines = graph
    # force the condition: every alpha is below a floor of 10, every |action| below 1 (and the
    # target entropy the warning names set here too, not left to another test run before)
    for name, value in (("target_entropy", -3.0), ("alpha_floor", 10.0), ("action_floor", 1.0),
                        ("watchdog_window", 2)):
        assert set_param(session, setter, name, value).successful
    wait_for(lambda: probes["stats"].messages and probes["stats"].messages[-1].alpha_collapse, 60,
             "alpha_collapse in the statistics")
    last = probes["stats"].messages[-1]
    assert "target_entropy -3.00" in last.warning and f"policy's mean action |tanh(mu)|={last.policy_mean_abs:.3f}" \
        in last.warning
    # the knob it names follows what was measured: the target only where the entropy is at it
    knob = "target_entropy -2.0" if last.entropy <= -3.0 + 0.5 else "ros2 param set /learner temperature"
    assert knob in last.warning, last.warning
    wait_for(lambda: any("alpha collapse" in line for line in lines), 60, "the alpha collapse warning in the log")
    assert sum("alpha collapse" in line for line in lines) == 1  # warned once


def test_each_transition_shows_the_effect_of_its_own_action(graph):
    """Issue 11's bug: the observation lagged the arm by a control period, so each transition
    paired an action with its predecessor's effect. Through the graph (lockstep) the EE motion
    between observation and next observation must follow the transition's own action."""
    from hilserl_ros.action_effect import action_effect

    _, _, probes, _, _ = graph
    # the actor's own (the bad-input test publishes malformed ones on the same topic)
    # (a step flagged command_late missed its period on a loaded machine: the learner does not train on it)
    sent = sorted((t for t in probes["transitions"].messages if t.actor_id == "actor" and not t.command_late
                   and len(t.observation) == len(t.next_observation) == 15 and len(t.action) == 4
                   and np.all(np.isfinite(list(t.observation) + list(t.next_observation) + list(t.action)))),
                  key=lambda t: t.seq)
    effect = action_effect([t.observation for t in sent], [t.action for t in sent],
                           [t.next_observation for t in sent], [t.reward for t in sent],
                           [t.terminated for t in sent])
    assert effect.sound(), str(effect)
    assert effect.reward_offset_m < 0.002, str(effect)  # the reward is that of the next observation
