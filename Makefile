# hilserl_ros: the public interface is these targets (see README).
#   make train   set up (venv + colcon build) and train in simulation
#   make test    set up the same way and run the tests
# Both are idempotent: stamps make a second run install and build nothing.

SHELL := /bin/bash

# The ROS 2 distribution of the venv's core wheels: jazzy (the LTS, default) or kilted.
# `make setup ROS_DISTRO=kilted` picks one; a sourced /opt/ros/<distro> whose ROS_DISTRO is one
# of these picks it too, so the venv's nodes speak the same ROS as the system's tools. Each
# distro has its own lock (distros/<distro>/) and its own venv and colcon trees, so both can
# live side by side in one checkout (the default's: .venv build install log).
ROS_DISTROS := jazzy kilted
DEFAULT_ROS_DISTRO := jazzy
ifeq ($(origin ROS_DISTRO),command line)
DISTRO := $(ROS_DISTRO)
else ifneq ($(filter $(ROS_DISTRO),$(ROS_DISTROS)),)
DISTRO := $(ROS_DISTRO)
else
DISTRO := $(DEFAULT_ROS_DISTRO)
ifneq ($(strip $(ROS_DISTRO)),)
$(info [setup] the sourced ROS 2 $(ROS_DISTRO) has no wheels here: the venv runs $(DISTRO) (ROS_DISTRO=jazzy|kilted on the make command line to choose))
endif
endif
ifeq ($(filter $(DISTRO),$(ROS_DISTROS)),)
$(error ROS_DISTRO=$(DISTRO) has no lock in distros/: choose one of $(ROS_DISTROS))
endif
SUFFIX := $(if $(filter $(DISTRO),$(DEFAULT_ROS_DISTRO)),,-$(DISTRO))
VENV ?= .venv$(SUFFIX)
BUILD_BASE ?= build$(SUFFIX)
INSTALL_BASE ?= install$(SUFFIX)
LOG_BASE ?= log$(SUFFIX)
LOCK := distros/$(DISTRO)/constraints.txt
ROS_REQUIREMENTS := distros/$(DISTRO)/requirements.txt
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
ROOT := $(CURDIR)
VENV_ABS := $(abspath $(VENV))
INSTALL_ABS := $(abspath $(INSTALL_BASE))
VENV_STAMP := $(VENV)/.hilserl-requirements
BUILD_STAMP := $(INSTALL_BASE)/.hilserl-build
INTERFACES := $(wildcard msg/*.msg srv/*.srv) msg srv
# What colcon copies into the install tree's share/ (ros2 launch reads the launch file there).
SHARED_FILES := $(wildcard launch/*.py config/*.yaml config/*/*.yaml urdf/*.urdf rviz/* foxglove/*)
# Entry points are generated for the node modules that exist (graph.py), so adding one
# re-runs the install and the build.
NODE_MODULES := hilserl_ros/graph.py hilserl_ros/nodes $(wildcard hilserl_ros/nodes/*_node.py)
# The real ros2 command line (ros2 launch/param/topic/service/run) for a venv of wheels, which
# have none: the ros2-tools kit in a shared/ folder beside or above the checkout, or ROS2_TOOLS=.
# It is installed into the venv when found; a sourced full ROS 2 install brings its own.
ROS2_TOOLS ?= $(firstword $(wildcard $(foreach d,. .. ../.. ../../.. ../../../..,$(abspath $(ROOT)/$(d))/shared/ros2-tools/install.sh)))
CLI_PREFIX := $(VENV_ABS)/ros2-tools
# the stamp says whether the kit was found: one that appears later is installed then
CLI_STAMP := $(VENV)/.hilserl-ros2-cli$(if $(ROS2_TOOLS),-kit,-none)
PYTEST_ARGS ?=
# Test workers (pytest-xdist), each on its own ROS domain, given a whole test file at a time
# (a module's shared graph or model is built once). Two by default: 10.5 min on two cores
# instead of 18 in one process (TEST_WORKERS=0), and the load they put on the machine is
# load the suite must hold under anyway.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0 1,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
ARGS ?=

# The environment every command runs in is $(VENV)/hilserl.env (made by setup, below): the
# venv, the colcon install tree for the generated interfaces, and the source checkout first on
# PYTHONPATH so edits to Python code take effect without a rebuild. The ROS wheels' own
# libraries are put on LD_LIBRARY_PATH by ros-wheels-bootstrapper (a .pth that re-executes
# Python with it set). Variables a sourced system ROS would set are replaced, not extended: its
# libraries and Python modules must not mix with the venv's wheels (even of the same distro:
# another Python). A person sources the same file to use the ros2 command line beside a run.
RUN = source $(VENV)/hilserl.env &&

.PHONY: setup train launch experiment-entropy test test-fast build clean distclean graph bench-learner bench-learning bench-world \
	bench-graph bench-faults bench-soak lock record-demos replay report pretrain-encoder train-reward-classifier

SETUP := $(BUILD_STAMP) $(CLI_STAMP) $(VENV)/hilserl.env
setup: $(SETUP)

# The venv is this distro's or made again: a venv of another distro's wheels (an older
# checkout's .venv, a VENV= pointed elsewhere) would mix two ROS versions in one process.
$(VENV_STAMP)-$(DISTRO): requirements.txt $(ROS_REQUIREMENTS) $(LOCK) setup.py $(NODE_MODULES)
	@want=$$(sed -n 's/^ros-rclpy==//p' $(ROS_REQUIREMENTS)); \
	have=$$($(PY) -c "import importlib.metadata as m; print(m.version('ros-rclpy'))" 2>/dev/null || true); \
	if [ -n "$$have" ] && [ "$$have" != "$$want" ]; then \
		if ! ls $(VENV)/.hilserl-requirements* > /dev/null 2>&1; then \
			echo "[setup] $(VENV) holds rclpy $$have, not $(DISTRO)'s $$want, and make setup did not make it: not touched (another VENV=, or delete it)"; exit 1; fi; \
		echo "[setup] $(VENV) holds rclpy $$have, not $(DISTRO)'s $$want: making it, $(BUILD_BASE) and $(INSTALL_BASE) again"; \
		rm -rf $(VENV) $(BUILD_BASE) $(INSTALL_BASE); fi
	@test -x $(PY) || { echo "[setup] creating $(VENV) ($(DISTRO)) with $(PYTHON_BOOT)"; $(PYTHON_BOOT) -m venv $(VENV); }
	@echo "[setup] installing the pinned requirements of ROS 2 $(DISTRO) into $(VENV)"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r $(ROS_REQUIREMENTS) -c $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV_STAMP)-*
	@touch $@

# colcon builds the interfaces (msg/, srv/) and installs the package into $(INSTALL_BASE)/.
$(BUILD_STAMP): $(VENV_STAMP)-$(DISTRO) CMakeLists.txt package.xml $(NODE_MODULES) $(INTERFACES) $(SHARED_FILES)
	@echo "[setup] colcon build (interfaces and package, ROS 2 $(DISTRO))"
	env -u PYTHONPATH -u LD_LIBRARY_PATH -u COLCON_PREFIX_PATH -u ROS_DISTRO \
		PATH="$(VENV_ABS)/bin:$$PATH" AMENT_PREFIX_PATH="$(VENV_ABS)" CMAKE_PREFIX_PATH="$(VENV_ABS)" \
		$(VENV)/bin/colcon --log-base $(LOG_BASE) build --merge-install --base-paths . \
		--build-base $(BUILD_BASE) --install-base $(INSTALL_BASE) \
		--event-handlers console_direct- console_cohesion- summary+ \
		--cmake-args -DPython3_EXECUTABLE=$(VENV_ABS)/bin/python -DBUILD_TESTING=OFF
	@$(PY) -c "import sys; print('$(INSTALL_ABS)/lib/python%d.%d/site-packages' % sys.version_info[:2])" > $(VENV)/.hilserl-sitedir
	@touch $@

# The ros2 command line from the ros2-tools kit, into the venv (its own prefix inside it).
# Without the kit, setup still succeeds: the tests of the command line then skip, saying why.
$(CLI_STAMP): $(VENV_STAMP)-$(DISTRO)
	@if [ -z "$(ROS2_TOOLS)" ]; then \
		echo "[setup] no ros2-tools kit found (shared/ros2-tools beside or above the checkout, or ROS2_TOOLS=path/to/install.sh):"; \
		echo "[setup] the venv has no ros2 command line; a sourced full ROS 2 install brings its own"; \
		rm -f $(VENV)/.hilserl-cli-sitedir; \
	else \
		echo "[setup] the ros2 command line (launch, ros2cli) from $(dir $(ROS2_TOOLS)) into $(CLI_PREFIX)"; \
		env -u PYTHONPATH -u LD_LIBRARY_PATH -u COLCON_PREFIX_PATH -u AMENT_PREFIX_PATH -u CMAKE_PREFIX_PATH -u ROS_DISTRO \
			bash $(ROS2_TOOLS) $(VENV_ABS) $(DISTRO) $(CLI_PREFIX) > $(VENV)/ros2-tools-install.log 2>&1 \
			|| { tail -20 $(VENV)/ros2-tools-install.log; echo "[setup] the ros2-tools kit failed to install (log: $(VENV)/ros2-tools-install.log)"; exit 1; }; \
		$(PY) -c "import sys; print(':$(CLI_PREFIX)/lib/python%d.%d/site-packages' % sys.version_info[:2])" > $(VENV)/.hilserl-cli-sitedir; \
	fi
	@rm -f $(VENV)/.hilserl-ros2-cli-*
	@touch $@

# A file to source in a shell of your own, for ros2 param/topic/service against a running
# graph: source .venv/hilserl.env  (it is what every make target runs in)
$(VENV)/hilserl.env: $(BUILD_STAMP) $(CLI_STAMP) Makefile
	@{ echo "# made by make setup: the environment of hilserl_ros's make targets (ROS 2 $(DISTRO))"; \
	   echo "unset ROS_DISTRO ROS_VERSION ROS_PYTHON_VERSION COLCON_PREFIX_PATH CMAKE_PREFIX_PATH"; \
	   echo "export PATH=\"$(VENV_ABS)/bin:\$$PATH\""; \
	   echo "export PYTHONPATH=\"$(ROOT):$$(cat $(VENV)/.hilserl-sitedir)$$(cat $(VENV)/.hilserl-cli-sitedir 2>/dev/null)\""; \
	   echo "export LD_LIBRARY_PATH=\"$(INSTALL_ABS)/lib$$(test -d $(CLI_PREFIX)/lib && echo :$(CLI_PREFIX)/lib)\""; \
	   echo "export AMENT_PREFIX_PATH=\"$(INSTALL_ABS):$(VENV_ABS)$$(test -d $(CLI_PREFIX)/share && echo :$(CLI_PREFIX))\""; \
	   echo "export HILSERL_ROS_DISTRO=$(DISTRO) PYTHONUNBUFFERED=1"; \
	   echo "export MUJOCO_GL=\"\$${MUJOCO_GL:-egl}\"  # the simulation's cameras render headless, as under make train"; } > $@

build: $(BUILD_STAMP)

train: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.train $(ARGS)

# the field report's experiment: target_entropy -action_dim, -action_dim/2, and switched mid-run; alpha, |action| and success plotted
experiment-entropy: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.entropy_experiment $(ARGS)

# the same graph, started without the training monitor (ros2 launch's equivalent)
launch: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.launcher $(ARGS)

# demonstrations as a rosbag2 (MCAP) bag: make record-demos ARGS="--episodes 20 [--operator joystick]"
record-demos: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.record_demos $(ARGS)

# republish a bag at its timing: make replay BAG=runs/run_... [RATE=2.0]
BAG ?=
RATE ?= 1.0
replay: $(SETUP)
	@test -n "$(BAG)" || { echo "usage: make replay BAG=path/to/bag [RATE=1.0]"; exit 2; }
	$(RUN) $(PY) -m hilserl_ros.nodes.player_node --ros-args -p bag:="$(BAG)" -p rate:=$(RATE)

# PNG plots of a run (run dir, bag or csv): make report ARGS="runs/train-..."
report: $(SETUP)
	$(RUN) $(PY) -m hilserl_ros.report $(ARGS)

graph: $(SETUP)
	$(RUN) $(PY) -m hilserl_ros.launcher --list $(ARGS)

test: $(SETUP)
	$(RUN) $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(SETUP)
	$(RUN) $(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

bench-learner: $(SETUP)
	$(RUN) $(PY) bench/learner.py $(ARGS)

bench-graph: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/graph.py $(ARGS)

# kills the learner (3x), the actor and the bridge mid-run; accounts for every transition
# reach and pick_cube from state, 3 seeds, ROS-free env and full graph -> bench/results/learning.json (about 20-40 min);
# ARGS="--observation pixels" from the cameras -> bench/results/learning_pixels.json
# the real arm's reward: make train-reward-classifier ARGS="runs/demos_... [--out FILE]"
# (or ARGS="--sim-episodes 60" for frames of the simulation); writes runs/reward_classifier.safetensors
train-reward-classifier: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.learning.reward_classifier $(ARGS)

bench-learning: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/learning.py $(ARGS)

bench-faults: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/faults.py $(ARGS)

# the fault soak of the tests, for 10 minutes instead of 2 (SOAK_MINUTES=...)
SOAK_MINUTES ?= 10
bench-soak: $(SETUP)
	$(RUN) HILSERL_SOAK_MINUTES=$(SOAK_MINUTES) $(PY) -m pytest -p no:xdist --timeout=0 -s \
		test/test_fault_tolerance.py::test_soak_with_random_faults_loses_nothing_and_leaves_nothing_behind $(ARGS)

bench-world: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) bench/world.py $(ARGS)

# trains the frozen camera encoder again (hilserl_ros/vision/weights/so101_cameras.safetensors, ~6 min)
pretrain-encoder: $(SETUP)
	$(RUN) MUJOCO_GL=egl $(PY) -m hilserl_ros.vision.pretrain $(ARGS)

# Re-pin every package of this distro's venv after a change to requirements.txt or
# distros/<distro>/requirements.txt: make lock [ROS_DISTRO=kilted]. Packages installed from a
# local source (the ros2-tools kit) are not locked: the kit pins them by its own sources.
lock: $(VENV_STAMP)-$(DISTRO)
	{ echo "# Full lock of the ROS 2 $(DISTRO) venv (pip freeze), applied with -c so transitive dependencies are pinned too."; \
	  echo "# Regenerate after changing requirements.txt or $(ROS_REQUIREMENTS): make lock ROS_DISTRO=$(DISTRO)"; \
	  $(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v ' @ '; } > $(LOCK)

clean:
	rm -rf $(BUILD_BASE) $(INSTALL_BASE) $(LOG_BASE)

distclean: clean
	rm -rf $(VENV)
