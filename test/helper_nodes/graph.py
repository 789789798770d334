"""A small graph for the launcher tests, described like the training graph."""
import os

from hilserl_ros.graph import Graph, LaunchArg, NodeSpec

HERE = os.path.dirname(os.path.abspath(__file__))

GRAPH = Graph(
    arguments=(
        LaunchArg("text", "hello", "what the talker says"),
        LaunchArg("with_crasher", "true", "start a node that fails after a second", ("true", "false")),
        LaunchArg("with_stubborn", "false", "start a process that ignores SIGINT/SIGTERM", ("true", "false")),
    ),
    nodes=(
        NodeSpec(name="talker", executable="talker", module="helper_nodes.talker", description="talks",
                 params_file=os.path.join(HERE, "talker.yaml"), arg_parameters={"text": "text"},
                 remappings=(("chatter", "launched_chatter"),),
                 on_death=("{python}", "-c", "print('talker on-death command ran')")),
        NodeSpec(name="crasher", executable="crasher", module="helper_nodes.crasher", description="fails",
                 only_if="with_crasher", on_death=("{python}", "-c", "print('cleaning up after crasher, {text}')")),
        NodeSpec(name="stubborn", executable="stubborn", module="helper_nodes.stubborn", description="ignores signals",
                 only_if="with_stubborn"),
    ),
)
