"""Parameters declared with descriptors and ranges, changed through the SetParameters service
(the call `ros2 param set` makes), refused with a reason when bad."""
import math

import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.node import Node

from hilserl_ros.ros.params import ParamSpec, declare

pytestmark = pytest.mark.ros


class KnobNode(Node):
    def __init__(self, context):
        super().__init__("knobs", context=context)
        self.changes = []
        self.params = declare(self, [
            ParamSpec("target_entropy", -2.0, "SAC entropy target", min=-20.0, max=0.0, unit="nats"),
            ParamSpec("utd_ratio", 2, "critic updates per actor update", min=1, max=20),
            ParamSpec("batch_size", 256, "batch", min=8, max=4096,
                      validator=lambda v: None if v % 8 == 0 else "must be a multiple of 8"),
            ParamSpec("hidden", 256, "layer width (fixed at start)", read_only=True),
            ParamSpec("gain", 1.0, "a double with no range"),
        ])
        self.params.on_change("target_entropy", lambda v: self.changes.append(("target_entropy", v)))


def double(name, value):
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def integer(name, value):
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value))


def string(name, value):
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))


@pytest.fixture
def knobs(ros):
    node = ros.add(KnobNode(ros.context))
    client_node = ros.node("param_client")
    client = client_node.create_client(SetParameters, "/knobs/set_parameters")

    def set_param(msg):
        (result,) = ros.call(client, SetParameters.Request(parameters=[msg])).results
        return result

    return node, set_param, client_node


def test_accepted_value_reaches_the_node(knobs, ros):
    node, set_param, client_node = knobs
    result = set_param(double("target_entropy", -4.0))
    assert result.successful, result.reason
    assert node.params["target_entropy"] == -4.0
    assert node.changes == [("target_entropy", -4.0)]
    # and a GetParameters call (ros2 param get) reads the new value back
    getter = client_node.create_client(GetParameters, "/knobs/get_parameters")
    (value,) = ros.call(getter, GetParameters.Request(names=["target_entropy"])).values
    assert value.double_value == -4.0


@pytest.mark.parametrize("msg, why", [
    (double("target_entropy", 1.5), "range"),
    (double("target_entropy", math.nan), "range"),
    (double("gain", math.nan), "finite"),
    (double("gain", math.inf), "finite"),
    (integer("utd_ratio", 0), "range"),
    (integer("batch_size", 100), "multiple of 8"),
    (string("target_entropy", "fast"), "type"),  # a number is taken as one; a word is not
    (integer("hidden", 512), "read-only"),
])
def test_bad_values_are_refused_with_a_reason(knobs, msg, why):
    node, set_param, _ = knobs
    before = node.params.values()
    result = set_param(msg)
    assert not result.successful
    assert why in result.reason.lower(), result.reason
    assert node.params.values() == before
    assert node.changes == []


def test_descriptors_publish_ranges_and_units(knobs, ros):
    _, _, client_node = knobs
    client = client_node.create_client(DescribeParameters, "/knobs/describe_parameters")
    te, utd = ros.call(client, DescribeParameters.Request(names=["target_entropy", "utd_ratio"])).descriptors
    assert (te.floating_point_range[0].from_value, te.floating_point_range[0].to_value) == (-20.0, 0.0)
    assert "[nats]" in te.description
    assert (utd.integer_range[0].from_value, utd.integer_range[0].to_value) == (1, 20)


def test_a_rate_parameter_retimes_its_timer_live(ros):
    from rclpy.node import Node

    from hilserl_ros.ros.params import ParamSpec, declare

    node = ros.add(Node("rated", context=ros.context))
    params = declare(node, [ParamSpec("rate", 10.0, "ticks per second", min=1.0, max=100.0)])
    timer = node.create_timer(0.1, lambda: None)
    params.bind_rate("rate", timer)
    client = ros.node("rate_client").create_client(SetParameters, "/rated/set_parameters")
    (result,) = ros.call(client, SetParameters.Request(parameters=[double("rate", 50.0)])).results
    assert result.successful
    assert timer.timer_period_ns == 20_000_000


def test_a_number_is_taken_as_the_number_it_is(knobs):
    """`make replay RATE=4` died on a double parameter given 4; `ros2 param set ... nan` (YAML
    reads nan and 1e9 as strings) was refused for its type instead of its value."""
    node, set_param, _ = knobs
    for msg in (integer("target_entropy", -3), integer("gain", 4), double("utd_ratio", 3.0)):
        result = set_param(msg)
        assert result.successful, result.reason
    assert node.params["target_entropy"] == -3.0 and isinstance(node.params["gain"], float)
    assert node.params["utd_ratio"] == 3 and isinstance(node.params["utd_ratio"], int)
    nan, big, word = (set_param(m) for m in (string("gain", "nan"), string("target_entropy", "1e9"),
                                              string("gain", "fast")))
    assert not nan.successful and "must be finite" in nan.reason
    assert not big.successful and "range" in big.reason.lower()  # its range, not its type
    assert not word.successful and "type" in word.reason.lower()  # not a number: refused for its type
    assert node.params["gain"] == 4.0 and node.params["target_entropy"] == -3.0


def test_a_whole_number_at_start_up_is_taken_for_a_double(ros):
    from rclpy.parameter import Parameter

    class Rate(Node):
        def __init__(self):
            super().__init__("rate_node", context=ros.context, parameter_overrides=[Parameter("rate", value=4)])
            self.params = declare(self, [ParamSpec("rate", 1.0, "playback rate", min=0.1, max=100.0)])

    node = ros.add(Rate())
    assert node.params["rate"] == 4.0 and isinstance(node.params["rate"], float)
