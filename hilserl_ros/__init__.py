"""hilserl_ros: HIL-SERL for the SO-101 arm on ROS 2.

The generated interfaces (hilserl_ros.msg, hilserl_ros.srv) are installed by colcon into the
install tree's copy of this package; extending __path__ lets a source checkout that comes
first on sys.path still find them. On a normal install both are one directory.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
