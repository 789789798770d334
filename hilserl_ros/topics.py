"""Topic and service names of the graph, in one place (nodes, RViz/Foxglove configs, tests)."""

# sensors and the arm
JOINT_STATES = "/joint_states"  # sensor_msgs/JointState, measured (rad, rad/s, effort = load)
JOINT_COMMANDS = "/joint_commands"  # sensor_msgs/JointState, position targets (rad) for the driver
# sensor_msgs/JointState: what the driver wrote to the servos (after its limits), stamped with the command it answers
JOINT_COMMANDS_APPLIED = "/joint_commands/applied"
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray
CAMERA_IMAGE = "/camera/image_raw"  # sensor_msgs/Image, rgb8: the front camera
WRIST_CAMERA_IMAGE = "/camera/wrist/image_raw"  # sensor_msgs/Image, rgb8
POLICY_VIEW_FRONT = "/actor/view/front"  # sensor_msgs/Image: the front frame as the policy sees it (cropped, resized)
POLICY_VIEW_WRIST = "/actor/view/wrist"
ROBOT_DESCRIPTION = "/robot_description"  # std_msgs/String (latched), URDF

# simulation
TASK_STATE = "/sim/task_state"  # hilserl_ros/TaskState: goal, EE position, reward, success
CLOCK = "/clock"  # rosgraph_msgs/Clock, simulation time

# the real arm's task source (the task node publishes TASK_STATE there)
REWARD_PREDICTION = "/reward_classifier/prediction"  # hilserl_ros/SuccessPrediction
REWARD_VETO = "/reward_classifier/veto"  # hilserl_ros/RewardVeto: the operator says a claimed success was none

# end effector
EE_COMMAND = "/ee_command"  # hilserl_ros/EndEffectorCommand, normalised deltas
EE_POSE = "/ee_pose"  # geometry_msgs/PoseStamped in base_link
WORKSPACE_MARKERS = "/workspace_markers"  # visualization_msgs/MarkerArray (latched)

# human in the loop
JOY = "/joy"  # sensor_msgs/Joy
INTERVENTION = "/intervention"  # hilserl_ros/Intervention
EPISODE_EVENTS = "/episode_events"  # hilserl_ros/EpisodeEvent

# learning
TRANSITIONS = "/transitions"  # hilserl_ros/Transition, actor -> learner
TRANSITION_ACKS = "/transitions/ack"  # hilserl_ros/TransitionAck, learner -> actors
POLICY_WEIGHTS = "/policy_weights"  # hilserl_ros/PolicyWeights (latched), learner -> actors
LEARNER_STATS = "/learner/stats"  # hilserl_ros/LearnerStats
EPISODE_STATS = "/episode_stats"  # hilserl_ros/EpisodeStats

# services
TORQUE_ENABLE = "/so101_driver/torque_enable"  # std_srvs/SetBool
SIM_RESET = "/sim/reset"  # std_srvs/Trigger
TASK_RESET = "/task/reset"  # std_srvs/Trigger: real arm, home and wait for the start
SAVE_CHECKPOINT = "/learner/save_checkpoint"  # hilserl_ros/SaveCheckpoint

# frames (REP-103/105)
BASE_FRAME = "base_link"
EE_FRAME = "gripper_frame_link"
CAMERA_FRAME = "camera_link"
