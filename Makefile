# hilserl_ros: the public interface is these targets (see README).
#   make train   set up (venv + colcon build) and train in simulation
#   make test    set up the same way and run the tests
# Both are idempotent: stamps make a second run install and build nothing.

SHELL := /bin/bash
VENV ?= .venv
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
ROOT := $(CURDIR)
VENV_ABS := $(abspath $(VENV))
VENV_STAMP := $(VENV)/.hilserl-requirements
BUILD_STAMP := install/.hilserl-build
INTERFACES := $(wildcard msg/*.msg srv/*.srv) msg srv
# Entry points are generated for the node modules that exist (graph.py), so adding one
# re-runs the install and the build.
NODE_MODULES := hilserl_ros/graph.py hilserl_ros/nodes $(wildcard hilserl_ros/nodes/*_node.py)
PYTEST_ARGS ?=
# Test workers (pytest-xdist), each on its own ROS domain, given a whole test file at a time
# (a module's shared graph or model is built once). Two by default: 10.5 min on two cores
# instead of 18 in one process (TEST_WORKERS=0), and the load they put on the machine is
# load the suite must hold under anyway.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0 1,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
ARGS ?=

# The environment every command runs in: the venv, the colcon install tree for the
# generated interfaces, and the source checkout first on PYTHONPATH so edits to Python code
# take effect without a rebuild. The ROS wheels' own libraries are put on LD_LIBRARY_PATH by
# ros-wheels-bootstrapper (a .pth that re-executes Python with it set).
# Variables a sourced system ROS would set are replaced, not extended: its libraries and
# Python modules must not mix with the venv's Kilted wheels.
RUN = env -u ROS_DISTRO -u ROS_VERSION -u ROS_PYTHON_VERSION -u COLCON_PREFIX_PATH -u CMAKE_PREFIX_PATH \
	PATH="$(VENV_ABS)/bin:$$PATH" \
	PYTHONPATH="$(ROOT):$$(cat $(VENV)/.hilserl-sitedir 2>/dev/null)" \
	LD_LIBRARY_PATH="$(ROOT)/install/lib" \
	AMENT_PREFIX_PATH="$(ROOT)/install:$(VENV_ABS)" \
	PYTHONUNBUFFERED=1

.PHONY: setup train launch experiment-entropy test test-fast build clean distclean graph bench-learner bench-learning bench-world \
	bench-graph bench-faults bench-soak lock record-demos replay report pretrain-encoder train-reward-classifier

setup: $(BUILD_STAMP)

$(VENV_STAMP): requirements.txt constraints.txt setup.py $(NODE_MODULES)
	@test -x $(PY) || { echo "[setup] creating $(VENV) with $(PYTHON_BOOT)"; $(PYTHON_BOOT) -m venv $(VENV); }
	@echo "[setup] installing pinned requirements into $(VENV)"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# colcon builds the interfaces (msg/, srv/) and installs the package into install/.
$(BUILD_STAMP): $(VENV_STAMP) CMakeLists.txt package.xml $(NODE_MODULES) $(INTERFACES)
	@echo "[setup] colcon build (interfaces and package)"
	env -u PYTHONPATH -u LD_LIBRARY_PATH -u COLCON_PREFIX_PATH \
		PATH="$(VENV_ABS)/bin:$$PATH" AMENT_PREFIX_PATH="$(VENV_ABS)" CMAKE_PREFIX_PATH="$(VENV_ABS)" \
		$(VENV)/bin/colcon --log-base log build --merge-install --base-paths . \
		--event-handlers console_direct- console_cohesion- summary+ \
		--cmake-args -DPython3_EXECUTABLE=$(VENV_ABS)/bin/python -DBUILD_TESTING=OFF
	@$(PY) -c "import sys; print('$(ROOT)/install/lib/python%d.%d/site-packages' % sys.version_info[:2])" > $(VENV)/.hilserl-sitedir
	@touch $@

build: $(BUILD_STAMP)

train: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.train $(ARGS)

# the field report's experiment: target_entropy -action_dim, -action_dim/2, and switched mid-run; alpha, |action| and success plotted
experiment-entropy: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.entropy_experiment $(ARGS)

# the same graph, started without the training monitor (ros2 launch's equivalent)
launch: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.launcher $(ARGS)

# demonstrations as a rosbag2 (MCAP) bag: make record-demos ARGS="--episodes 20 [--operator joystick]"
record-demos: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.record_demos $(ARGS)

# republish a bag at its timing: make replay BAG=runs/run_... [RATE=2.0]
BAG ?=
RATE ?= 1.0
replay: $(BUILD_STAMP)
	@test -n "$(BAG)" || { echo "usage: make replay BAG=path/to/bag [RATE=1.0]"; exit 2; }
	$(RUN) $(PY) -m hilserl_ros.nodes.player_node --ros-args -p bag:="$(BAG)" -p rate:=$(RATE)

# PNG plots of a run (run dir, bag or csv): make report ARGS="runs/train-..."
report: $(BUILD_STAMP)
	$(RUN) $(PY) -m hilserl_ros.report $(ARGS)

graph: $(BUILD_STAMP)
	$(RUN) $(PY) -m hilserl_ros.launcher --list $(ARGS)

test: $(BUILD_STAMP)
	$(RUN) $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(BUILD_STAMP)
	$(RUN) $(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

bench-learner: $(BUILD_STAMP)
	$(RUN) $(PY) bench/learner.py $(ARGS)

bench-graph: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/graph.py $(ARGS)

# kills the learner (3x), the actor and the bridge mid-run; accounts for every transition
# reach and pick_cube from state, 3 seeds, ROS-free env and full graph -> bench/results/learning.json (about 20-40 min);
# ARGS="--observation pixels" from the cameras -> bench/results/learning_pixels.json
# the real arm's reward: make train-reward-classifier ARGS="runs/demos_... [--out FILE]"
# (or ARGS="--sim-episodes 60" for frames of the simulation); writes runs/reward_classifier.safetensors
train-reward-classifier: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.learning.reward_classifier $(ARGS)

bench-learning: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/learning.py $(ARGS)

bench-faults: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/faults.py $(ARGS)

# the fault soak of the tests, for 10 minutes instead of 2 (SOAK_MINUTES=...)
SOAK_MINUTES ?= 10
bench-soak: $(BUILD_STAMP)
	$(RUN) HILSERL_SOAK_MINUTES=$(SOAK_MINUTES) $(PY) -m pytest -p no:xdist --timeout=0 -s \
		test/test_fault_tolerance.py::test_soak_with_random_faults_loses_nothing_and_leaves_nothing_behind $(ARGS)

bench-world: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/world.py $(ARGS)

# trains the frozen camera encoder again (hilserl_ros/vision/weights/so101_cameras.safetensors, ~6 min)
pretrain-encoder: $(BUILD_STAMP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.vision.pretrain $(ARGS)

# Re-pin every package of the venv after a change to requirements.txt.
lock: $(VENV_STAMP)
	{ echo "# Full lock of the venv (pip freeze), applied with -c so transitive dependencies are pinned too."; \
	  echo "# Regenerate after changing requirements.txt: make lock"; \
	  $(PY) -m pip freeze --exclude-editable --disable-pip-version-check; } > constraints.txt

clean:
	rm -rf build install log

distclean: clean
	rm -rf $(VENV)
