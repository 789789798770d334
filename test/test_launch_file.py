"""launch/train.launch.py, evaluated against a minimal stand-in for the launch API (launch and
launch_ros cannot be installed here), yields exactly the graph description's nodes."""
import importlib.util
import os
import sys
import types

import pytest

from hilserl_ros import graph
from ros_harness import REPO_ROOT


# Stand-ins with the real signatures (launch / launch_ros, Jazzy and Kilted), so a misspelt
# or unsupported keyword fails here as it would under ros2 launch.
EXECUTE_PROCESS_KWARGS = {"output", "emulate_tty", "respawn", "respawn_delay", "respawn_max_retries",
                          "sigterm_timeout", "sigkill_timeout", "cwd", "env", "additional_env", "shell",
                          "on_exit", "log_cmd", "cached_output", "output_format"}


class LaunchConfiguration:
    def __init__(self, variable_name, *, default=None):
        self.name = variable_name

    def perform(self, context):
        return context.launch_configurations[self.name]


class LaunchDescription:
    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        if choices is not None and default_value is not None and default_value not in choices:
            raise ValueError(f"default {default_value!r} of {name} is not one of {choices}")
        self.args = (name,)
        self.kwargs = {"default_value": default_value, "description": description}
        if choices is not None:
            self.kwargs["choices"] = choices


class ExecuteProcess:
    def __init__(self, *, cmd, name=None, cwd=None, env=None, additional_env=None, shell=False, output="log",
                 **kwargs):
        unknown = set(kwargs) - EXECUTE_PROCESS_KWARGS
        if unknown:
            raise TypeError(f"ExecuteProcess() got unexpected keyword arguments {sorted(unknown)}")
        self.cmd = cmd


class OnProcessExit:
    def __init__(self, *, target_action=None, on_exit, **kwargs):
        self.target_action, self.on_exit = target_action, on_exit


class RegisterEventHandler:
    def __init__(self, event_handler, **kwargs):
        self.event_handler = event_handler


class OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None, **left_over_kwargs):
        self.kwargs = {"function": function}


class Node:
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                 parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs):
        unknown = set(kwargs) - EXECUTE_PROCESS_KWARGS
        if unknown:
            raise TypeError(f"launch_ros Node() got unexpected keyword arguments {sorted(unknown)}")
        self.kwargs = {"executable": executable, "package": package, "name": name, "parameters": parameters,
                       "remappings": remappings, "arguments": arguments, **kwargs}


@pytest.fixture
def launch_module(monkeypatch):
    fakes = {
        "launch": types.ModuleType("launch"),
        "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch.event_handlers": types.ModuleType("launch.event_handlers"),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
    }
    fakes["launch"].LaunchDescription = LaunchDescription
    fakes["launch.actions"].DeclareLaunchArgument = DeclareLaunchArgument
    fakes["launch.actions"].OpaqueFunction = OpaqueFunction
    fakes["launch.actions"].ExecuteProcess = ExecuteProcess
    fakes["launch.actions"].RegisterEventHandler = RegisterEventHandler
    fakes["launch.event_handlers"].OnProcessExit = OnProcessExit
    fakes["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    fakes["launch_ros.actions"].Node = Node
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("train_launch", os.path.join(REPO_ROOT, "launch", "train.launch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Judge the whole graph, including nodes whose modules later work delivers.
    monkeypatch.setattr(module, "is_implemented", lambda spec: True)
    return module


def evaluate(module, overrides, with_handlers=False):
    description = module.generate_launch_description()
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    values = {d.args[0]: d.kwargs["default_value"] for d in declared}
    values.update(overrides)
    context = types.SimpleNamespace(launch_configurations=values)
    actions = opaque.kwargs["function"](context)
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
    assert handler.target_action is driver
    killed = handler.on_exit(types.SimpleNamespace(returncode=-9), None)
    assert len(killed) == 1 and killed[0].cmd[1:] == ["-m", "hilserl_ros.hardware.torque_off", "--port", "/dev/ttyUSB7"]
    assert handler.on_exit(types.SimpleNamespace(returncode=0), None) == []  # it turned torque off itself
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
