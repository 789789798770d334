"""The one description of the graph and everything generated from it."""
import os
import re
import subprocess
import sys

import pytest
import yaml

from hilserl_ros import graph
from hilserl_ros.launcher import node_command, parse_overrides
from ros_harness import REPO_ROOT


def test_unknown_argument_and_bad_choice_are_refused():
    with pytest.raises(ValueError, match="unknown launch argument 'use_simm'"):
        graph.TRAIN_GRAPH.resolve_arguments({"use_simm": "true"})
    with pytest.raises(ValueError, match="record:=maybe"):
        graph.TRAIN_GRAPH.resolve_arguments({"record": "maybe"})
    with pytest.raises(ValueError, match="name:=value"):
        parse_overrides(["use_sim=true"])


def test_node_names_are_unique_and_an_executable_has_one_module():
    names = [s.name for s in graph.NODES]
    modules = {}
    for s in graph.NODES:  # one executable may run as two nodes (camera, wrist_camera), never two modules
        assert modules.setdefault(s.executable, s.module) == s.module, s.executable
    assert len(set(names)) == len(names)
    for spec in graph.NODES:
        for arg in (spec.only_if, spec.unless, *spec.arg_parameters.values()):
            assert arg is None or arg in {a.name for a in graph.LAUNCH_ARGUMENTS}, (spec.name, arg)


def test_cmake_reads_the_entry_points_from_the_graph():
    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "hilserl_ros", "graph.py"), "--entry-points"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == graph.entry_points()
    for line in out:
        exe, target = line.split("=")
        module, func = target.split(":")
        assert func == "main" and os.path.isfile(os.path.join(REPO_ROOT, *module.split(".")) + ".py")


def test_colcon_installed_one_executable_per_existing_node():
    from ament_index_python.packages import get_package_prefix

    lib = os.path.join(get_package_prefix("hilserl_ros"), "lib", "hilserl_ros")
    installed = sorted(os.listdir(lib)) if os.path.isdir(lib) else []
    assert installed == sorted(e.split("=")[0] for e in graph.entry_points())


def test_params_files_exist_for_existing_nodes_and_are_keyed_by_node_name():
    for spec in graph.NODES:
        if not graph.is_implemented(spec) or spec.params_file is None:
            continue
        path = graph.params_file_path(spec)
        with open(path) as fh:
            data = yaml.safe_load(fh)
        assert list(data) == [spec.name], f"{path} must hold parameters under '{spec.name}:'"
        assert "ros__parameters" in data[spec.name]


def test_node_command_is_what_ros2_launch_runs(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "learner.yaml").write_text("learner:\n  ros__parameters: {}\n")
    spec = graph.NodeSpec(name="learner", executable="learner_node", module="hilserl_ros.nodes.learner_node",
                          description="", params_file="learner.yaml", arg_parameters={"bag_dir": "bag_dir"},
                          parameters={"utd_ratio": 2, "debug": True}, remappings=(("stats", "learner/stats"),))
    cmd = node_command(spec, {"bag_dir": "runs/a b"}, share=str(tmp_path))
    assert cmd == [sys.executable, "-m", "hilserl_ros.nodes.learner_node", "--ros-args", "-r", "__node:=learner",
                   "--params-file", str(tmp_path / "config" / "learner.yaml"),
                   "-p", "utd_ratio:=2", "-p", "debug:=true", "-p", 'bag_dir:="runs/a b"',
                   "-r", "stats:=learner/stats"]


def test_launcher_list_prints_every_node_and_argument():
    out = subprocess.run([sys.executable, "-m", "hilserl_ros.launcher", "--list", "use_sim:=false"],
                         capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    for spec in graph.TRAIN_GRAPH.active_nodes({"use_sim": "false"}):
        assert re.search(rf"^\s+{spec.name}\s", out, re.M), spec.name
    assert not re.search(r"^\s+sim\s", out, re.M)  # the sim node is off when use_sim:=false
    for arg in graph.LAUNCH_ARGUMENTS:
        assert f"arg {arg.name}:={arg.default}" in out


def test_rviz_config_shows_the_graph_topics():
    from hilserl_ros import topics

    text = open(os.path.join(REPO_ROOT, "rviz", "hilserl.rviz")).read()
    shown = set(re.findall(r"Value: (/[\w/]+)", text))
    assert shown == {topics.ROBOT_DESCRIPTION, topics.EE_POSE, topics.WORKSPACE_MARKERS, topics.CAMERA_IMAGE,
                     topics.POLICY_VIEW_FRONT, topics.POLICY_VIEW_WRIST}
    assert f"Fixed Frame: {topics.BASE_FRAME}" in text


def test_the_real_arm_graph_has_a_task_source_and_a_classifier_only_when_asked():
    real = {n.name for n in graph.TRAIN_GRAPH.active_nodes({"use_sim": "false"})}
    assert {"task", "camera", "joy_intervention"} <= real and not {"sim", "sim_camera", "reward_classifier"} & real
    args = graph.TRAIN_GRAPH.resolve_arguments({"use_sim": "false"})
    assert args["observation"] == "pixels"  # no goal on the real arm
    assert graph.TRAIN_GRAPH.resolve_arguments({})["observation"] == "state"
    both = {n.name for n in graph.TRAIN_GRAPH.active_nodes({"use_sim": "false", "reward": "both", "camera": "none"})}
    assert "reward_classifier" in both and "camera" not in both
    simulated = {n.name for n in graph.TRAIN_GRAPH.active_nodes({"reward": "classifier"})}
    assert not {"task", "reward_classifier", "camera"} & simulated  # the simulator judges in simulation


def test_the_wrist_camera_is_the_camera_node_again_on_the_wrist_topic():
    from hilserl_ros import topics

    real = {n.name: n for n in graph.TRAIN_GRAPH.active_nodes({"use_sim": "false", "wrist_camera": "/dev/video2"})}
    wrist = real["wrist_camera"]
    assert wrist.executable == real["camera"].executable
    assert dict(wrist.remappings) == {topics.CAMERA_IMAGE: topics.WRIST_CAMERA_IMAGE}
    assert graph.node_parameters(wrist, graph.TRAIN_GRAPH.resolve_arguments(
        {"use_sim": "false", "wrist_camera": "/dev/video2"}), graph.LAUNCH_ARGUMENTS)["device"] == "/dev/video2"
    assert "wrist_camera" not in {n.name for n in graph.TRAIN_GRAPH.active_nodes({"use_sim": "false"})}
    assert len(graph.entry_points()) == len(set(graph.entry_points()))
