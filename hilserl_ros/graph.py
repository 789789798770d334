"""The hilserl_ros node graph, described once.

Everything that starts nodes reads this module: ``launch/train.launch.py`` (``ros2 launch`` on a
full ROS 2 install), the project launcher ``hilserl_ros.launcher`` (here, where ``ros2 launch``
cannot be installed), ``setup.py`` and ``CMakeLists.txt`` (console entry points). It imports
nothing from ROS so it can be read at build time and in tests.

Run ``python hilserl_ros/graph.py --entry-points`` to list ``executable=module:function`` lines.
"""
from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

PACKAGE = "hilserl_ros"

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


@dataclass(frozen=True)
class LaunchArg:
    """A launch argument (``name:=value`` on the command line)."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()
    kind: type = str  # type of the parameters it sets: str, bool, int or float
    check: Callable[[str], str | None] | None = None  # why a value is refused, or None

    def typed(self, value: str) -> object:
        """The parameter value for ``value`` (launch arguments are strings)."""
        if self.kind is bool:
            return parse_bool(value, self.name)
        return self.kind(value)


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    ``only_if`` / ``unless`` name boolean launch arguments (the sim-vs-real conditions);
    ``arg_parameters`` maps a ROS parameter of the node to the launch argument that sets it.
    """

    name: str  # ROS node name: `ros2 param set /<name> ...`, key in the parameter file
    executable: str  # `ros2 run <package> <executable>`
    module: str  # Python module whose main() runs the node ("" for another package's node)
    description: str
    params_file: str | None = None  # file in config/
    arg_parameters: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, object] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    only_if: str | None = None
    unless: str | None = None
    operator: str | None = None  # runs only for this operator (the `operator` argument)
    package: str = PACKAGE  # another package's node (robot_state_publisher, rviz2) runs where installed
    file_parameters: Mapping[str, str] = field(default_factory=dict)  # parameter -> file in the share dir, as text
    share_arguments: tuple[str, ...] = ()  # command-line arguments; "{share}" is the share directory
    respawn: bool = False
    respawn_delay: float = 2.0
    # run when the process ends with an error or a signal (no chance to clean up itself);
    # "{python}" and "{<launch argument>}" are filled in; skipped when ``on_death_unless`` is true
    on_death: tuple[str, ...] = ()
    on_death_unless: str | None = None

    @property
    def entry_point(self) -> str:
        return f"{self.executable}={self.module}:main"


def port_problem(value: str) -> str | None:
    """Why ``value`` is not a TCP port to listen on, or None (0 = any free port)."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    return None if 0 <= port <= 65535 else "is not a port: use a number from 1 to 65535 (0: any free port)"


def address_problem(value: str) -> str | None:
    """Why ``value`` is not an address a server here can bind to, or None."""
    if value == "localhost":
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ("is not an IP address: use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface, "
                "which opens every node's parameters to the network)")
    return None


LAUNCH_ARGUMENTS: tuple[LaunchArg, ...] = (
    LaunchArg("use_sim", "true", "MuJoCo SO-101 (true) or the real arm on `port` (false)", ("true", "false"), bool),
    LaunchArg("task", "reach", "Simulated task", ("reach", "pick_cube")),
    LaunchArg("port", "/dev/ttyACM0", "Serial port of the Feetech servo bus (real arm)"),
    LaunchArg("camera", "0", "OpenCV camera index or device path (real arm)"),
    LaunchArg("camera_node", "auto", "Run the OpenCV camera node; auto = on the real arm unless camera:=none "
              "(another node publishes the camera topics)", ("auto", "true", "false")),
    LaunchArg("wrist_camera", "none", "Real arm: OpenCV device of the wrist camera, published on "
              "/camera/wrist/image_raw (pick_cube's pixel observation has one); none = no wrist camera node"),
    LaunchArg("wrist_camera_node", "auto", "Run the wrist camera node; auto = on the real arm when wrist_camera "
              "is not none", ("auto", "true", "false")),
    LaunchArg("record", "false", "Record the run as a rosbag2 (MCAP) directory", ("true", "false"), bool),
    LaunchArg("bag_dir", "runs", "Directory that receives recorded bags"),
    LaunchArg("foxglove", "true", "Start the Foxglove WebSocket bridge (ws://127.0.0.1:8765 by default)",
              ("true", "false"), bool),
    LaunchArg("foxglove_port", "8765", "Port of the Foxglove bridge (ws://<address>:<port>); 0 = any free port, "
              "logged by the bridge", kind=int, check=port_problem),
    LaunchArg("foxglove_address", "127.0.0.1", "Interface the Foxglove bridge binds to: 127.0.0.1 = this machine "
              "only; 0.0.0.0 = every interface, which opens every node's parameters to the network",
              check=address_problem),
    LaunchArg("gamepad", "true", "Read a gamepad and publish /joy (set false when joy_node runs)", ("true", "false"), bool),
    LaunchArg("observation", "auto", "What the policy observes (config/observation/<task>.yaml): state "
              "(joints, EE, goal: simulation only) or pixels (cameras + proprioception); auto = state in "
              "simulation, pixels on the real arm", ("auto", "state", "pixels")),
    LaunchArg("sim_camera", "auto", "Render the simulated cameras; auto = when the observation has cameras",
              ("auto", "true", "false")),
    LaunchArg("operator", "auto", "Who intervenes: scripted (simulation only) or joystick (a gamepad on /joy); "
              "auto = scripted in simulation, joystick on the real arm", ("auto", "scripted", "joystick")),
    LaunchArg("reward", "buttons", "Real arm: who says success, the operator's buttons, the reward classifier, or "
              "both (simulation: the simulator)", ("buttons", "classifier", "both")),
    LaunchArg("reward_model", "runs/reward_classifier.safetensors", "Real arm: the reward classifier file of "
              "make train-reward-classifier"),
    LaunchArg("reward_classifier", "auto", "Run the reward classifier node; auto = on the real arm when reward is "
              "classifier or both", ("auto", "true", "false")),
    LaunchArg("demo_bags", "", "Comma-separated bags whose transitions the learner preloads as demonstrations"),
    LaunchArg("robot_state_publisher", "true", "Publish /robot_description and /tf from /joint_states "
              "(robot_state_publisher, full ROS 2 install; the Foxglove bridge does it where it is absent)",
              ("true", "false"), bool),
    LaunchArg("rviz", "false", "Start RViz with rviz/hilserl.rviz (full ROS 2 install)", ("true", "false"), bool),
    LaunchArg("time_scale", "1.0", "Simulated seconds per wall second (simulation only; with lockstep, at most)",
              kind=float),
    LaunchArg("seed", "0", "Seed of the run: targets, action sampling, network initialisation, operator noise",
              kind=int),
    LaunchArg("lockstep", "true", "Simulation only: simulated time waits at each control period for the next "
              "command, so every action gets one period of physics at any time_scale and CPU load",
              ("true", "false"), bool),
    LaunchArg("checkpoint_dir", "runs/checkpoints", "Where the learner writes and resumes checkpoints"),
    LaunchArg("spool_dir", "runs/spool", "Where the actor keeps transitions until they are in a learner checkpoint "
              "(pair it with checkpoint_dir: a new run wants both fresh)"),
)

# The training graph. Node names are the ones users type: `ros2 param set /learner ...`.
NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="sim",
        executable="sim_node",
        module="hilserl_ros.nodes.sim_node",
        description="MuJoCo SO-101 world: physics, task reward/success, reset service, rendered camera",
        params_file="sim.yaml",
        arg_parameters={"task": "task", "time_scale": "time_scale", "lockstep": "lockstep", "seed": "seed"},
        only_if="use_sim",
    ),
    NodeSpec(
        name="sim_camera",
        executable="sim_camera_node",
        module="hilserl_ros.nodes.sim_camera_node",
        description="Rendered cameras of the simulation on the real cameras' topics (own process)",
        params_file="sim_camera.yaml",
        arg_parameters={"task": "task", "observation": "observation", "lockstep": "lockstep"},
        only_if="sim_camera",
    ),
    NodeSpec(
        name="so101_driver",
        executable="hardware_node",
        module="hilserl_ros.nodes.hardware_node",
        description="SO-101 hardware interface: Feetech bus, /joint_states, /diagnostics, torque, safety",
        params_file="hardware.yaml",
        # in simulation its stamps are simulated time (the actor's lockstep compares them)
        arg_parameters={"port": "port", "use_sim": "use_sim", "use_sim_time": "use_sim"},
        # never respawned without the operator; if it dies without turning torque off itself
        # (SIGKILL, crash), torque goes off from outside and stays off until re-enabled
        respawn=False,
        on_death=("{python}", "-m", "hilserl_ros.hardware.torque_off", "--port", "{port}"),
        on_death_unless="use_sim",
    ),
    NodeSpec(
        name="ee_ik",
        executable="ik_node",
        module="hilserl_ros.nodes.ik_node",
        description="End-effector IK: normalised EE deltas x action_scale -> workspace box -> joint targets",
        params_file="ik.yaml",
    ),
    NodeSpec(
        name="camera",
        executable="camera_node",
        module="hilserl_ros.nodes.camera_node",
        description="OpenCV camera publisher (in simulation the sim publishes the rendered view instead)",
        params_file="camera.yaml",
        arg_parameters={"device": "camera"},
        only_if="camera_node",
    ),
    NodeSpec(
        name="wrist_camera",
        executable="camera_node",
        module="hilserl_ros.nodes.camera_node",
        description="The wrist camera: the camera node again, on the wrist camera's topic",
        params_file="wrist_camera.yaml",
        arg_parameters={"device": "wrist_camera"},
        remappings=(("/camera/image_raw", "/camera/wrist/image_raw"),),
        only_if="wrist_camera_node",
    ),
    NodeSpec(
        name="gamepad",
        executable="gamepad_node",
        module="hilserl_ros.nodes.gamepad_node",
        description="Built-in gamepad reader publishing sensor_msgs/Joy on /joy",
        params_file="gamepad.yaml",
        only_if="gamepad",
        operator="joystick",
    ),
    NodeSpec(
        name="joy_intervention",
        executable="intervention_node",
        module="hilserl_ros.nodes.intervention_node",
        description="/joy -> intervention action with deadman, episode buttons",
        params_file="intervention.yaml",
        operator="joystick",
    ),
    NodeSpec(
        name="task",
        executable="task_node",
        module="hilserl_ros.nodes.task_node",
        description="Real arm's task source: reset home, start button or timer, success from buttons and classifier",
        params_file="task.yaml",
        arg_parameters={"task": "task", "reward_source": "reward"},
        unless="use_sim",
    ),
    NodeSpec(
        name="reward_classifier",
        executable="reward_classifier_node",
        module="hilserl_ros.nodes.reward_classifier_node",
        description="Reward classifier: P(success) of the cameras' frames at the control rate",
        params_file="reward_classifier.yaml",
        arg_parameters={"task": "task", "observation": "observation", "model": "reward_model"},
        only_if="reward_classifier",
    ),
    NodeSpec(
        name="scripted_human",
        executable="scripted_human_node",
        module="hilserl_ros.nodes.scripted_human_node",
        description="Simulated operator: takes over when the policy drifts, like a person with a gamepad",
        params_file="scripted_human.yaml",
        arg_parameters={"seed": "seed", "task": "task"},
        operator="scripted",
    ),
    NodeSpec(
        name="actor",
        executable="actor_node",
        module="hilserl_ros.nodes.actor_node",
        description="SAC actor: policy at the control rate, human overrides, episodes, transitions out",
        params_file="actor.yaml",
        # in simulation the control rate runs on the simulation's /clock (time_scale)
        arg_parameters={"use_sim": "use_sim", "use_sim_time": "use_sim", "spool_dir": "spool_dir",
                        "lockstep": "lockstep", "seed": "seed", "task": "task", "observation": "observation"},
        respawn=True,
    ),
    NodeSpec(
        name="learner",
        executable="learner_node",
        module="hilserl_ros.nodes.learner_node",
        description="SAC learner: buffers, updates, weights and statistics out, checkpoints",
        params_file="learner.yaml",
        arg_parameters={"checkpoint_dir": "checkpoint_dir", "demo_bags": "demo_bags", "seed": "seed",
                        "task": "task", "observation": "observation"},
        respawn=True,
    ),
    NodeSpec(
        name="robot_state_publisher",
        executable="robot_state_publisher",
        module="",
        package="robot_state_publisher",
        description="URDF + /joint_states -> /tf and /robot_description (RViz, Foxglove)",
        file_parameters={"robot_description": "urdf/so101.urdf"},
        only_if="robot_state_publisher",
    ),
    NodeSpec(
        name="rviz",
        executable="rviz2",
        module="",
        package="rviz2",
        description="RViz with the arm, EE pose, workspace box and camera",
        share_arguments=("-d", "{share}/rviz/hilserl.rviz"),
        only_if="rviz",
    ),
    NodeSpec(
        name="foxglove_bridge",
        executable="foxglove_bridge_node",
        module="hilserl_ros.nodes.foxglove_bridge_node",
        description="Foxglove WebSocket bridge on localhost: topics, parameters",
        params_file="foxglove.yaml",
        arg_parameters={"port": "foxglove_port", "address": "foxglove_address"},
        only_if="foxglove",
        respawn=True,
    ),
    NodeSpec(
        name="recorder",
        executable="recorder_node",
        module="hilserl_ros.nodes.recorder_node",
        description="rosbag2 (MCAP) recorder of the run",
        params_file="recorder.yaml",
        arg_parameters={"bag_dir": "bag_dir"},
        only_if="record",
    ),
)


# Nodes run on their own, outside the training graph (`ros2 run hilserl_ros <executable>`).
TOOLS: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="player",
        executable="player_node",
        module="hilserl_ros.nodes.player_node",
        description="rosbag2 (MCAP) player: republishes a bag at its recorded timing x rate",
    ),
)


def parse_bool(value: str | bool, what: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{what} must be true or false, got {value!r}")


@dataclass(frozen=True)
class Graph:
    """Launch arguments plus the nodes they switch on and configure."""

    arguments: tuple[LaunchArg, ...]
    nodes: tuple[NodeSpec, ...]

    def resolve_arguments(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Defaults updated by ``overrides``; unknown names and values outside ``choices`` raise."""
        known = {a.name: a for a in self.arguments}
        values = {a.name: a.default for a in self.arguments}
        for name, value in (overrides or {}).items():
            if name not in known:
                raise ValueError(f"unknown launch argument {name!r}; known: {', '.join(sorted(known))}")
            arg = known[name]
            if arg.choices and str(value).lower() not in arg.choices:
                raise ValueError(f"launch argument {name}:={value} is not one of {', '.join(arg.choices)}")
            problem = arg.check(str(value)) if arg.check else None
            if problem:
                raise ValueError(f"launch argument {name}:={value} {problem}")
            values[name] = str(value)
        simulated = parse_bool(values.get("use_sim", "true"), "use_sim")
        if values.get("observation") == "auto":
            values["observation"] = "state" if simulated else "pixels"
        if values.get("sim_camera") == "auto":
            values["sim_camera"] = "true" if simulated and values.get("observation", "state") != "state" else "false"
        if values.get("camera_node") == "auto":
            values["camera_node"] = "true" if not simulated and values.get("camera", "0").lower() != "none" else "false"
        if values.get("wrist_camera_node") == "auto":
            values["wrist_camera_node"] = "true" if not simulated and values.get("wrist_camera", "none").lower() != "none" \
                else "false"
        if values.get("reward_classifier") == "auto":
            values["reward_classifier"] = "true" if not simulated and values.get("reward", "buttons") != "buttons" else "false"
        if values.get("operator") == "auto":
            values["operator"] = "scripted" if simulated else "joystick"
        if values.get("operator") == "scripted" and not simulated:
            raise ValueError("operator:=scripted needs the simulation (use_sim:=true); on the real arm use a joystick")
        return values

    def active_nodes(self, overrides: Mapping[str, str] | None = None) -> list[NodeSpec]:
        """The nodes that run for these launch arguments, in start order."""
        args = self.resolve_arguments(overrides)
        return [spec for spec in self.nodes if is_active(spec, args)]


def is_active(spec: NodeSpec, args: Mapping[str, str]) -> bool:
    if spec.only_if is not None and not parse_bool(args[spec.only_if], spec.only_if):
        return False
    if spec.unless is not None and parse_bool(args[spec.unless], spec.unless):
        return False
    if spec.operator is not None and args["operator"] != spec.operator:
        return False
    return True


def node_parameters(spec: NodeSpec, args: Mapping[str, str],
                    arguments: tuple[LaunchArg, ...] = LAUNCH_ARGUMENTS) -> dict[str, object]:
    """Parameters set on top of the node's parameter file (from launch arguments), typed by
    the argument's ``kind`` (so ``camera:=0`` stays the string "0" for a string parameter)."""
    kinds = {a.name: a for a in arguments}
    params: dict[str, object] = dict(spec.parameters)
    for param, rel in spec.file_parameters.items():
        with open(os.path.join(share_dir(), rel)) as fh:
            params[param] = fh.read()
    for param, arg in spec.arg_parameters.items():
        params[param] = kinds[arg].typed(args[arg]) if arg in kinds else args[arg]
    return params


TRAIN_GRAPH = Graph(LAUNCH_ARGUMENTS, NODES)


def source_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def share_dir() -> str:
    """Where launch/, config/, urdf/ and rviz/ live: the source checkout when running from
    one (so edits take effect without a rebuild), else the installed share directory."""
    root = source_root()
    if os.path.isdir(os.path.join(root, "config")) and os.path.isfile(os.path.join(root, "package.xml")):
        return root
    from ament_index_python.packages import get_package_share_directory

    return get_package_share_directory(PACKAGE)


def params_file_path(spec: NodeSpec, share: str | None = None) -> str | None:
    if spec.params_file is None:
        return None
    return os.path.join(share or share_dir(), "config", spec.params_file)


def task_params_path(task: str, share: str | None = None) -> str | None:
    """config/tasks/<task>.yaml, the task's parameters on top of every node's own file, if any."""
    path = os.path.join(share or share_dir(), "config", "tasks", f"{task}.yaml")
    return path if os.path.isfile(path) else None


def death_command(spec: NodeSpec, args: Mapping[str, str]) -> list[str]:
    """The command to run when ``spec``'s process dies, or [] (none, or its condition is off)."""
    if not spec.on_death or (spec.on_death_unless and parse_bool(args[spec.on_death_unless], spec.on_death_unless)):
        return []
    return [part.format(python=sys.executable, **args) for part in spec.on_death]


def node_arguments(spec: NodeSpec, share: str | None = None) -> list[str]:
    return [a.replace("{share}", share or share_dir()) for a in spec.share_arguments]


def external_executable(spec: NodeSpec) -> str | None:
    """Where another package's executable is installed (``<prefix>/lib/<package>/<exe>``), if it is."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        path = os.path.join(prefix, "lib", spec.package, spec.executable)
        if prefix and os.access(path, os.X_OK):
            return path
    return None


def is_implemented(spec: NodeSpec) -> bool:
    """Whether the node can run here: our module exists (the graph names nodes later work
    delivers), or another package's executable is installed."""
    if spec.package != PACKAGE:
        return external_executable(spec) is not None
    if not spec.module.startswith(PACKAGE + "."):
        return True
    rel = spec.module.replace(".", os.sep) + ".py"
    return os.path.isfile(os.path.join(source_root(), rel))


def entry_points(nodes: tuple[NodeSpec, ...] = NODES + TOOLS) -> list[str]:
    """Console entry points of the nodes that exist."""
    found = [spec.entry_point for spec in nodes if spec.package == PACKAGE and is_implemented(spec)]
    return list(dict.fromkeys(found))  # one executable may run as several nodes (camera, wrist_camera)


if __name__ == "__main__":
    if sys.argv[1:] == ["--entry-points"]:
        print("\n".join(entry_points()))
    else:
        for spec in NODES:
            cond = []
            if spec.only_if:
                cond.append(f"if {spec.only_if}")
            if spec.unless:
                cond.append(f"unless {spec.unless}")
            if spec.operator:
                cond.append(f"operator={spec.operator}")
            print(f"{spec.name:18s} {spec.executable:22s} {' '.join(cond):28s} {spec.description}")
