"""The HIL-SERL learning engine: SAC with a critic ensemble, automatic temperature, an
optional discrete grasp critic, image encoders, replay buffers and checkpoints. Free of ROS:
the learner and actor nodes, the tests, the benchmarks and notebooks all use it directly."""
