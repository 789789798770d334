"""Camera images: conversion to the policy's uint8 RGB input, crop/resize (no ROS), and
numpy <-> sensor_msgs/Image (``ros_image``)."""
