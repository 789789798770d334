"""Keeping a run: message definitions, rosbag2 (MCAP) recording, replay, demonstrations, reports.

ROS-free where it can be: the bag format is handled by the `rosbags` library, the message
definitions come from the installed .msg files, and only the nodes touch rclpy.
"""
