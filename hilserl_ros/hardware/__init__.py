"""The SO-101 below the end effector: servo bus, calibration, emulator (no ROS)."""
