"""pip view of hilserl_ros (``pip install -e .``): the ROS-free core plus one console script per
node and the project launcher. colcon builds this package with ament_cmake (CMakeLists.txt),
because the interfaces in msg/ and srv/ need rosidl; both read the node list from graph.py.
"""
import os
import runpy

from setuptools import find_packages, setup

_graph = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hilserl_ros", "graph.py"))

setup(
    name="hilserl_ros",
    version="0.1.0",
    description="HIL-SERL (SAC with human interventions) for the SO-101 arm on ROS 2",
    license="Apache-2.0",
    packages=find_packages(include=("hilserl_ros", "hilserl_ros.*")),
    package_data={"hilserl_ros.vision": ["weights/*.safetensors"]},  # the frozen camera encoder
    python_requires=">=3.10",
    entry_points={
        "console_scripts": _graph["entry_points"]()
        + ["hilserl-launch=hilserl_ros.launcher:main"],
    },
)
