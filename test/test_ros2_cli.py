"""The ros2 command line a user types, against the real package: ``ros2 launch hilserl_ros
train.launch.py``, ``ros2 param``, ``ros2 service call``, ``ros2 topic echo``, ``ros2 run``
and Ctrl-C. The CLI is a sourced ROS 2 install's own or the ros2-tools kit (see ros2_cli.py);
without either these tests skip, saying why.

One simulated graph is launched for the module; the tests run in file order against it and
the last one stops it with Ctrl-C.
"""
import os
import re

import psutil
import pytest
import yaml

from hilserl_ros import graph
from ros2_cli import Background, poll, require_cli, ros2, stop_daemon
from ros_harness import live_nodes

pytestmark = pytest.mark.ros

LAUNCH = ["launch", "hilserl_ros", "train.launch.py"]
# the bridge binds a TCP port: off, so parallel test runs never compete for it
GRAPH_ARGS = {"foxglove": "false"}


def expected_nodes(args: dict) -> set[str]:
    return {"/" + spec.name for spec in graph.TRAIN_GRAPH.active_nodes(args) if graph.is_implemented(spec)}


def listed_nodes(result) -> set[str]:
    return {line.strip() for line in result.output.splitlines() if line.startswith("/")}


def test_show_args_lists_every_argument_of_the_graph_with_its_default_and_choices():
    require_cli()
    result = ros2(*LAUNCH, "--show-args")
    assert result.returncode == 0, result
    for arg in graph.LAUNCH_ARGUMENTS:
        block = result.output.split(f"'{arg.name}':", 1)
        assert len(block) == 2, f"{arg.name} missing:\n{result}"
        described = block[1].split("\n\n", 1)[0]
        assert f"(default: '{arg.default}')" in described, described
        if arg.choices:
            assert str(list(arg.choices)) in described, described


def test_a_bad_argument_stops_the_launch_before_any_node_with_the_reason(tmp_path):
    require_cli()
    result = ros2(*LAUNCH, "task:=juggle", "foxglove:=false", timeout=60, cwd=str(tmp_path))
    assert result.returncode != 0, result
    assert "juggle" in result.output and "task" in result.output, result
    assert "process started" not in result.output, result
    result = ros2(*LAUNCH, "foxglove_port:=65536", timeout=60, cwd=str(tmp_path))
    assert result.returncode != 0 and "foxglove_port:=65536 is not a port" in result.output, result


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    require_cli()
    work = tmp_path_factory.mktemp("launch")
    args = dict(GRAPH_ARGS, checkpoint_dir=str(work / "checkpoints"))
    run = Background([*LAUNCH, *(f"{k}:={v}" for k, v in args.items())], str(work / "launch.log"), cwd=str(work))
    run.work = work
    run.nodes = expected_nodes(args)
    try:
        yield run
    finally:
        run.kill()
        stop_daemon()


def test_ros2_launch_starts_the_whole_graph_and_episodes_run(launched):
    poll(["node", "list"], lambda r: launched.nodes <= listed_nodes(r), 120,
         f"ros2 node list to show {sorted(launched.nodes)}")
    launched.wait_for_output("[ACTOR] Episode 1 done", 180)
    launched.wait_for_output("[LEARNER] Episode 1 |", 60)
    # a package the venv lacks is said, not dropped without a word
    if not graph.is_implemented(next(s for s in graph.NODES if s.name == "robot_state_publisher")):
        assert "robot_state_publisher not started: package robot_state_publisher is not installed" in launched.output


def _param(node: str, name: str) -> str:
    return poll(["param", "get", node, name], lambda r: r.returncode == 0 and re.search(r"values? (is|are):", r.output), 60,
                f"ros2 param get {node} {name}").output.strip()


def _set(node: str, name: str, value: str) -> str:
    # ros2 param set exits 0 whether or not the node took the value: its words say which
    return poll(["param", "set", node, name, value],
                lambda r: "Set parameter successful" in r.output or "Setting parameter failed" in r.output, 60,
                f"ros2 param set {node} {name} {value}").output.strip()


def test_param_set_get_and_describe_on_the_learner(launched):
    assert "Set parameter successful" in _set("/learner", "target_entropy", "-3.0")
    assert _param("/learner", "target_entropy") == "Double value is: -3.0"
    # a whole number for a double: taken as the number it is (launch files, Makefiles, people type these)
    assert "Set parameter successful" in _set("/learner", "target_entropy", "-2")
    assert _param("/learner", "target_entropy") == "Double value is: -2.0"
    # YAML's .nan, and plain nan (a string to ros2param): refused with the node's reason, value kept
    for bad in (".nan", "nan", "1e9"):
        said = _set("/learner", "target_entropy", bad)
        assert "Setting parameter failed" in said and "target_entropy" in said, said
    assert _param("/learner", "target_entropy") == "Double value is: -2.0"
    described = poll(["param", "describe", "/learner", "target_entropy"], lambda r: "Type: double" in r.output, 60,
                     "ros2 param describe /learner target_entropy").output
    assert "Min value: -100.0" in described and "Max value: 100.0" in described, described
    # the watchdog's and the statistics' view follow the change
    stats = poll(["topic", "echo", "--once", "/learner/stats"],
                 lambda r: "target_entropy: -2.0" in r.output, 60, "/learner/stats to carry target_entropy -2.0")
    assert "update_step:" in stats.output


def test_param_set_get_and_describe_on_the_ik_node(launched):
    assert "Set parameter successful" in _set("/ee_ik", "action_scale", "0.02")
    assert _param("/ee_ik", "action_scale") == "Double value is: 0.02"
    said = _set("/ee_ik", "action_scale", "0.5")  # 5x the largest step the IK node allows
    assert "Setting parameter failed" in said and "action_scale" in said, said
    assert _param("/ee_ik", "action_scale") == "Double value is: 0.02"
    described = poll(["param", "describe", "/ee_ik", "action_scale"], lambda r: "Type: double" in r.output, 60,
                     "ros2 param describe /ee_ik action_scale").output
    assert "Min value: 0.001" in described and "Max value: 0.1" in described, described
    assert "metres of EE motion" in described


def test_the_learner_writes_a_checkpoint_on_a_service_call(launched):
    target = launched.work / "asked"
    result = poll(["service", "call", "/learner/save_checkpoint", "hilserl_ros/srv/SaveCheckpoint",
                   f"{{path: '{target}'}}"], lambda r: "response:" in r.output, 90,
                  "ros2 service call /learner/save_checkpoint", per_call=60)
    assert "success=True" in result.output, result
    written = re.search(r"written_path='([^']+)'", result.output).group(1)
    assert written.startswith(str(target)) and os.path.getsize(written) > 0


def test_topic_echo_once_shows_the_learner_statistics(launched):
    result = poll(["topic", "echo", "--once", "/learner/stats"], lambda r: "---" in r.output, 60,
                  "ros2 topic echo --once /learner/stats")
    stats = yaml.safe_load(result.output.split("---")[0])
    # episodes ran before this test; updates start after training_starts transitions, whenever that is
    assert stats["transitions_received"] > 0 and stats["update_step"] >= 0
    assert stats["alpha"] > 0 and stats["transitions_dropped"] == 0
    for field in ("entropy", "target_entropy", "policy_mean_abs", "alpha_collapse", "warning"):
        assert field in stats


def test_ctrl_c_stops_every_node_cleanly_and_leaves_none_behind(launched):
    processes = psutil.Process(launched.proc.pid).children(recursive=True)
    assert len(processes) >= len(launched.nodes)
    code = launched.ctrl_c(timeout=60)
    out = launched.output
    assert code == 0, out[-4000:]
    gone, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    tail = out[out.index("user interrupted with ctrl-c"):]
    for node in launched.nodes:  # each closed (torque off, final checkpoint) and exited 0
        executable = next(s.executable for s in graph.NODES if "/" + s.name == node)
        assert re.search(rf"\[{executable}-\d+\]: process has finished cleanly", tail), tail
    assert "final checkpoint:" in tail  # (the driver's torque-off line races /sim closing its bus)
    # the second SIGINT (the group's, then launch's) interrupts no close() half-way
    for bad in ("Traceback", "KeyboardInterrupt", "process has died", "context is invalid"):
        assert bad not in tail, tail
    left = lambda r: launched.nodes & listed_nodes(r)  # noqa: E731
    poll(["node", "list"], lambda r: not left(r), 60,
         f"the nodes to leave the graph (nodes alive in the test process itself: {live_nodes()})")


def test_ros2_run_starts_a_node_with_parameters_and_ctrl_c_stops_it(tmp_path):
    require_cli()
    run = Background(["run", "hilserl_ros", "learner_node", "--ros-args", "-r", "__node:=cli_learner",
                      "-p", "target_entropy:=-1.5", "-p", f"checkpoint_dir:={tmp_path / 'ckpt'}",
                      "-p", "hidden_dims:=[32, 32]"], str(tmp_path / "run.log"), cwd=str(tmp_path))
    try:
        assert _param("/cli_learner", "target_entropy") == "Double value is: -1.5"
        dims = _param("/cli_learner", "hidden_dims")  # "[32, 32]" or "array('q', [32, 32])", by distro
        assert dims.startswith("Integer values are:") and "[32, 32]" in dims, dims
        code = run.ctrl_c(timeout=60)
        assert code == 0, run.output
        assert "Traceback" not in run.output, run.output
    finally:
        run.kill()
        stop_daemon()
