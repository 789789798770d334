"""ros2 launch hilserl_ros train.launch.py [use_sim:=true] [task:=reach] [port:=/dev/ttyACM0] ...

    ... [foxglove:=true] [foxglove_port:=8765] [foxglove_address:=127.0.0.1]  (the Foxglove bridge)

Builds its actions from the one description of the graph (hilserl_ros.graph), the same one
the project launcher (python -m hilserl_ros.launcher) starts where ros2 launch is absent.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from hilserl_ros.graph import (
    TRAIN_GRAPH,
    death_command,
    is_implemented,
    node_arguments,
    node_parameters,
    params_file_path,
    task_params_path,
)


def _nodes(context, graph=TRAIN_GRAPH):
    values = {arg.name: LaunchConfiguration(arg.name).perform(context) for arg in graph.arguments}
    args = graph.resolve_arguments(values)
    actions = []
    for spec in graph.active_nodes(args):
        if not is_implemented(spec):
            # another package that is not installed here (robot_state_publisher or rviz2 in a
            # venv of wheels, rviz2 on a robot without a screen): said, not silently dropped
            switch = f" or {spec.only_if}:=false" if spec.only_if else ""
            apt = "ros-<distro>-" + spec.package.replace("_", "-")
            actions.append(LogInfo(msg=f"{spec.name} not started: package {spec.package} is not installed "
                                       f"here (apt install {apt}{switch}). {spec.description}"))
            continue
        parameters = []
        path = params_file_path(spec)
        if path is not None:
            parameters.append(path)
        task_path = task_params_path(args["task"]) if path is not None else None
        if task_path is not None:
            parameters.append(task_path)  # the task's parameters (config/tasks/), after the node's own
        extra = node_parameters(spec, args, graph.arguments)
        if extra:
            parameters.append(extra)
        node = Node(
            package=spec.package,
            executable=spec.executable,
            arguments=node_arguments(spec),
            name=spec.name,
            parameters=parameters,
            remappings=list(spec.remappings),
            respawn=spec.respawn,
            respawn_delay=spec.respawn_delay,
            output="screen",
            emulate_tty=True,
        )
        actions.append(node)
        command = death_command(spec, args)
        if command:
            # e.g. the driver killed or crashed: torque off from outside (not on a clean exit)
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node,
                on_exit=lambda event, _context, cmd=command: (
                    [ExecuteProcess(cmd=cmd, output="screen")] if event.returncode != 0 else []))))
    return actions


def generate_launch_description():
    declared = [
        DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description,
                              **({"choices": list(arg.choices)} if arg.choices else {}))
        for arg in TRAIN_GRAPH.arguments
    ]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
