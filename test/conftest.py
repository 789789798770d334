"""Fixtures shared by the tests: an isolated ROS domain per test run, real rclpy nodes
in-process and as subprocesses, and waits with timeouts (see ros_harness.py)."""
import fcntl
import os
import random
import signal
import tempfile
import uuid

# A test run started as a background job of a script inherits SIGINT ignored, and so would
# every process a test starts (an ignore survives exec): tests that stop a process with
# SIGINT, as Ctrl-C does, need it delivered. (CI once left a checkpoint writer running.)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _claim_domain() -> int:
    """A DDS domain no other test run on this machine holds: an exclusive lock file per
    domain, kept for the life of this process (the OS drops it when the process ends)."""
    candidates = list(range(1, 102))
    random.SystemRandom().shuffle(candidates)
    for domain in candidates:
        fh = open(os.path.join(tempfile.gettempdir(), f"hilserl-ros-domain-{domain}.lock"), "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _claim_domain.held = fh  # keep the lock
        return domain
    raise RuntimeError("every ROS domain 1-101 is held by another test run")


# Before anything imports rclpy: this run gets its own DDS domain, kept on loopback, so
# parallel runs (and anything else on the machine) never see each other's traffic. Each
# pytest-xdist worker is a run of its own: it inherits the controller's environment, so it
# claims a domain (and a process marker) for itself instead of sharing the controller's.
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("HILSERL_TEST_WORKER") != _worker:
    os.environ["HILSERL_TEST_WORKER"] = _worker
    os.environ["HILSERL_TEST_DOMAIN"] = str(_claim_domain())
    os.environ["HILSERL_TEST_RUN"] = uuid.uuid4().hex
if "HILSERL_TEST_DOMAIN" not in os.environ:
    os.environ["HILSERL_TEST_DOMAIN"] = str(_claim_domain())
os.environ["ROS_DOMAIN_ID"] = os.environ["HILSERL_TEST_DOMAIN"]
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="hilserl-roslog-"))
os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must be set before mujoco is imported
# Every process a test starts carries this marker, so tests can prove none is left behind.
os.environ.setdefault("HILSERL_TEST_RUN", uuid.uuid4().hex)

import pytest  # noqa: E402

from ros_harness import NodeProcess, RosSession  # noqa: E402


@pytest.fixture
def ros():
    """A fresh rclpy context with a background executor; nodes made here are spun."""
    session = RosSession()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def node_process():
    """Start node modules as subprocesses (``python -m module --ros-args ...``); all are
    stopped (SIGINT, then SIGKILL) at the end of the test."""
    started: list[NodeProcess] = []

    def start(module: str, *ros_args: str, name: str | None = None, env: dict | None = None) -> NodeProcess:
        proc = NodeProcess(module, list(ros_args), name=name, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def pytest_collection_modifyitems(config, items):
    """Slow tests start first: with parallel workers (make test: pytest-xdist, one test file per
    worker at a time, so a module's shared graph is built once) the long files then do not end
    up last on one worker while the other idles. Order within each kind as collected."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # a stable sort


def pytest_report_header(config):
    """Which ROS 2 these tests run on, and which ros2 command line they drive."""
    from importlib import metadata

    from ros2_cli import find_cli

    try:
        rclpy_version = metadata.version("ros-rclpy")
    except metadata.PackageNotFoundError:
        rclpy_version = "of a ROS 2 install"
    distro = os.environ.get("HILSERL_ROS_DISTRO") or os.environ.get("ROS_DISTRO") or "?"
    cli, where = find_cli()
    return [f"ROS 2 {distro}: rclpy {rclpy_version}, domain {os.environ['ROS_DOMAIN_ID']}",
            f"ros2 command line: {cli} ({where})" if cli else f"ros2 command line: none ({where})"]
