"""launch/train.launch.py evaluated by the real launch and launch_ros (a sourced ROS 2 install's
or the ros2-tools kit in the venv) without starting a process: every node of the graph
description, with its parameters, remappings, respawn and the real arm's torque-off handler.
test_ros2_cli.py runs it for real with ``ros2 launch``."""
import os
import types

import pytest

from hilserl_ros import graph
from ros2_cli import find_cli
from ros_harness import REPO_ROOT

launch_ros = pytest.importorskip("launch_ros.actions", reason=find_cli()[1])
from launch import LaunchContext  # noqa: E402
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler  # noqa: E402
from launch.event_handlers import OnProcessExit  # noqa: E402
from launch.launch_description_sources import get_launch_description_from_python_launch_file  # noqa: E402
from launch.utilities import perform_substitutions  # noqa: E402

Node = launch_ros.Node


@pytest.fixture
def launch_module(monkeypatch):
    """Records the keyword arguments each real Node and OnProcessExit was made with (the real
    constructors still run: a misspelt or unsupported keyword fails here as under ros2 launch)."""
    for cls in (Node, OnProcessExit):
        real_init = cls.__init__

        def spy(self, *args, _real_init=real_init, **kwargs):
            _real_init(self, *args, **kwargs)
            self.kwargs = kwargs

        monkeypatch.setattr(cls, "__init__", spy)
    # judge the whole graph, also the nodes of packages not installed here (rviz2, robot_state_publisher)
    monkeypatch.setattr(graph, "is_implemented", lambda spec: True)
    path = os.path.join(REPO_ROOT, "launch", "train.launch.py")
    return types.SimpleNamespace(path=path)


def evaluate(module, overrides, with_handlers=False):
    description = get_launch_description_from_python_launch_file(module.path)
    context = LaunchContext()
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    for d in declared:
        default = perform_substitutions(context, d.default_value) if d.default_value is not None else None
        context.launch_configurations[d.name] = overrides.get(d.name, default)
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    actions = opaque.execute(context)
    declared = [types.SimpleNamespace(args=(d.name,), kwargs={
        "default_value": perform_substitutions(context, d.default_value), "description": d.description,
        **({"choices": d.choices} if d.choices else {})}) for d in declared]
    if with_handlers:
        return declared, actions
    return declared, [a for a in actions if isinstance(a, Node)]


def test_declares_every_graph_argument_with_defaults_and_choices(launch_module):
    declared, _ = evaluate(launch_module, {})
    got = {d.args[0]: (d.kwargs["default_value"], tuple(d.kwargs.get("choices", ()))) for d in declared}
    want = {a.name: (a.default, a.choices) for a in graph.LAUNCH_ARGUMENTS}
    assert got == want
    assert all(d.kwargs["description"] for d in declared)


@pytest.mark.parametrize("overrides", [
    {},
    {"use_sim": "false", "port": "/dev/ttyUSB3", "camera": "2"},
    {"use_sim": "true", "task": "pick_cube", "record": "true", "foxglove": "false"},
    {"use_sim": "false", "gamepad": "false", "record": "true", "bag_dir": "/data/bags"},
    {"use_sim": "true", "operator": "joystick", "rviz": "true", "robot_state_publisher": "false"},
])
def test_nodes_and_parameters_match_the_graph_description(launch_module, overrides):
    _, actions = evaluate(launch_module, overrides)
    expected = graph.TRAIN_GRAPH.active_nodes(overrides)
    args = graph.TRAIN_GRAPH.resolve_arguments(overrides)
    assert [a.kwargs["name"] for a in actions] == [s.name for s in expected]
    for action, spec in zip(actions, expected):
        kw = action.kwargs
        assert kw["package"] == spec.package
        assert kw["executable"] == spec.executable
        assert kw["arguments"] == graph.node_arguments(spec)
        assert kw["remappings"] == list(spec.remappings)
        assert kw["respawn"] == spec.respawn
        files = [p for p in kw["parameters"] if isinstance(p, str)]
        dicts = [p for p in kw["parameters"] if isinstance(p, dict)]
        task_file = graph.task_params_path(args["task"])  # config/tasks/<task>.yaml, after the node's own
        assert files == ([graph.params_file_path(spec)] + ([task_file] if task_file else []) if spec.params_file else [])
        merged = {k: v for d in dicts for k, v in d.items()}
        assert merged == graph.node_parameters(spec, args)


def test_sim_and_real_graphs_differ_as_described(launch_module):
    _, sim = evaluate(launch_module, {"use_sim": "true"})
    _, real = evaluate(launch_module, {"use_sim": "false"})
    sim_names, real_names = {a.kwargs["name"] for a in sim}, {a.kwargs["name"] for a in real}
    assert "sim" in sim_names and "scripted_human" in sim_names and "camera" not in sim_names
    assert "camera" in real_names and "joy_intervention" in real_names and "sim" not in real_names
    driver = next(a for a in real if a.kwargs["name"] == "so101_driver")
    assert {"port": "/dev/ttyACM0", "use_sim": False, "use_sim_time": False} == next(
        p for p in driver.kwargs["parameters"] if isinstance(p, dict))
    sim_node = next(a for a in sim if a.kwargs["name"] == "sim")
    assert next(p for p in sim_node.kwargs["parameters"] if isinstance(p, dict))["lockstep"] is True


def test_a_bad_choice_is_refused(launch_module):
    with pytest.raises(ValueError, match="task"):
        evaluate(launch_module, {"task": "juggle"})


def test_rviz_and_robot_state_publisher_on_a_full_install(launch_module):
    _, actions = evaluate(launch_module, {"rviz": "true"})
    by_name = {a.kwargs["name"]: a.kwargs for a in actions}
    rsp = by_name["robot_state_publisher"]
    assert rsp["package"] == "robot_state_publisher"
    urdf = next(p for p in rsp["parameters"] if isinstance(p, dict))["robot_description"]
    assert urdf.lstrip().startswith("<") and "gripper_frame_link" in urdf
    rviz = by_name["rviz"]
    assert rviz["package"] == "rviz2" and rviz["arguments"][0] == "-d"
    assert os.path.isfile(rviz["arguments"][1]) and rviz["arguments"][1].endswith("hilserl.rviz")
    _, without = evaluate(launch_module, {"robot_state_publisher": "false"})
    assert "robot_state_publisher" not in {a.kwargs["name"] for a in without}
    assert "rviz" not in {a.kwargs["name"] for a in without}  # off by default


def test_operator_picks_the_intervention_nodes(launch_module):
    names = lambda overrides: {a.kwargs["name"] for a in evaluate(launch_module, overrides)[1]}  # noqa: E731
    assert {"scripted_human"} <= names({}) and "joy_intervention" not in names({})
    joystick_in_sim = names({"operator": "joystick"})
    assert {"joy_intervention", "gamepad", "sim"} <= joystick_in_sim and "scripted_human" not in joystick_in_sim
    assert "joy_intervention" in names({"use_sim": "false"})
    with pytest.raises(ValueError, match="operator:=scripted needs the simulation"):
        evaluate(launch_module, {"use_sim": "false", "operator": "scripted"})


def test_the_real_arms_driver_gets_torque_off_when_it_dies_uncleanly(launch_module):
    _, actions = evaluate(launch_module, {"use_sim": "false", "port": "/dev/ttyUSB7"}, with_handlers=True)
    driver = next(a for a in actions if isinstance(a, Node) and a.kwargs["name"] == "so101_driver")
    assert driver.kwargs["respawn"] is False  # never restarted without the operator
    (handler,) = [a.event_handler for a in actions if isinstance(a, RegisterEventHandler)]
    assert handler.kwargs["target_action"] is driver
    on_exit = handler.kwargs["on_exit"]
    killed = on_exit(types.SimpleNamespace(returncode=-9), None)
    context = LaunchContext()
    assert len(killed) == 1 and [perform_substitutions(context, part) for part in killed[0].cmd][1:] == [
        "-m", "hilserl_ros.hardware.torque_off", "--port", "/dev/ttyUSB7"]
    assert on_exit(types.SimpleNamespace(returncode=0), None) == []  # it turned torque off itself
    _, sim = evaluate(launch_module, {"use_sim": "true"}, with_handlers=True)
    assert not [a for a in sim if isinstance(a, RegisterEventHandler)]


def test_the_foxglove_port_and_address_are_launch_arguments_of_the_bridge(launch_module):
    def bridge_parameters(overrides):
        _, actions = evaluate(launch_module, overrides)
        bridge = next(a for a in actions if a.kwargs["name"] == "foxglove_bridge")
        return next(p for p in bridge.kwargs["parameters"] if isinstance(p, dict))

    assert bridge_parameters({}) == {"port": 8765, "address": "127.0.0.1"}  # localhost unless told otherwise
    # an int, as the node declares it: a string would be refused by its parameter type
    assert bridge_parameters({"foxglove_port": "8766", "foxglove_address": "0.0.0.0"}) == {
        "port": 8766, "address": "0.0.0.0"}
    with pytest.raises(ValueError, match=r"foxglove_port:=65536 is not a port"):
        evaluate(launch_module, {"foxglove_port": "65536"})


def test_a_node_whose_package_is_missing_is_said_not_dropped(launch_module, monkeypatch):
    from launch.actions import LogInfo

    monkeypatch.setattr(graph, "is_implemented", lambda spec: spec.package == graph.PACKAGE)
    _, actions = evaluate(launch_module, {"rviz": "true"}, with_handlers=True)
    said = [" ".join(perform_substitutions(LaunchContext(), [m]) for m in a.msg) for a in actions
            if isinstance(a, LogInfo)]
    assert any(m.startswith("robot_state_publisher not started: package robot_state_publisher is not installed")
               and "robot_state_publisher:=false" in m for m in said), said
    assert any(m.startswith("rviz not started: package rviz2") and "rviz:=false" in m for m in said), said
    assert "robot_state_publisher" not in {a.kwargs["name"] for a in actions if isinstance(a, Node)}
