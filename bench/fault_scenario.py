"""Fault injection on the simulated training graph, shared by the fault tests and
``make bench-faults``: start the graph, kill nodes (SIGKILL: no goodbye, no last checkpoint),
and account for every transition.

Accounting: the monitor hears every (session, seq) the actors publish (first sending and
re-sends); at the end the simulation is frozen (SIGSTOP: simulated time stops, so the actor
produces nothing while its resend timer, on the wall clock, still runs), the learner is left to
catch up, a checkpoint is asked for and read back: its sequence trackers and buffer size say
what the learner holds. Produced = the highest seq per session; stored, duplicated and lost
follow from that.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from hilserl_ros import topics
from hilserl_ros.graph import TRAIN_GRAPH, Graph
from hilserl_ros.learning import checkpoint
from hilserl_ros.msg import EpisodeStats, LearnerStats, PolicyWeights, Transition, TransitionAck
from hilserl_ros.ros import qos
from hilserl_ros.session import GraphSession
from hilserl_ros.srv import SaveCheckpoint

CONTROL_PERIOD = 0.1  # s of simulated time (actor control_rate 10 Hz)


def fault_graph(checkpoint_period: float, actor_respawn: bool = True) -> Graph:
    """The training graph with frequent learner checkpoints (so kills land between them)."""
    def adapt(spec):
        if spec.name == "learner":
            return dataclasses.replace(spec, parameters={**spec.parameters, "checkpoint_period": checkpoint_period,
                                                         "training_starts": 100})
        if spec.name == "actor":
            return dataclasses.replace(spec, respawn=actor_respawn)
        return spec

    return Graph(TRAIN_GRAPH.arguments, tuple(adapt(s) for s in TRAIN_GRAPH.nodes))


def _stamp(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class Accounting:
    produced: int
    stored: int
    duplicates_dropped: int
    lost: int
    stored_twice: int
    buffer_size: int
    sessions: int
    late: int = 0  # produced, flagged command_late (a period the simulation ran without them): held, in no buffer
    missing_by_session: dict = field(default_factory=dict)


class FaultRun:
    def __init__(self, workdir: str, time_scale: float = 1.0, checkpoint_period: float = 3.0,
                 foxglove: bool = False, actor_respawn: bool = True):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.log = open(os.path.join(workdir, "graph.log"), "a", buffering=1)
        overrides = {"time_scale": str(time_scale), "foxglove": str(foxglove).lower(),
                     "foxglove_port": "0",  # any free port: never a user's own bridge on 8765
                     "checkpoint_dir": os.path.join(workdir, "checkpoints"),
                     "spool_dir": os.path.join(workdir, "spool")}
        self.session = GraphSession(fault_graph(checkpoint_period, actor_respawn), overrides, out=self.log,
                                    node_name="fault_monitor")
        self.lock = threading.Lock()
        self.seen: dict[tuple[int, int], tuple[float, int, int]] = {}  # (session, seq) -> (stamp, episode, step)
        self.publications = 0
        self.late: set[tuple[int, int]] = set()  # (session, seq) flagged command_late
        self.acks: dict[int, TransitionAck] = {}  # session -> latest
        self.learner_starts: list[tuple[int, float]] = []  # (learner_start, wall time first heard)
        self.episodes: list[EpisodeStats] = []
        self.weights_versions: list[int] = []
        self.stats: LearnerStats | None = None
        self.peak_rss: dict[str, int] = {}
        self.kills: list[dict] = []
        node = self.session.node
        node.create_subscription(Transition, topics.TRANSITIONS, self._on_transition, qos.TRANSITIONS)
        node.create_subscription(TransitionAck, topics.TRANSITION_ACKS, self._on_ack, qos.EVENTS)
        node.create_subscription(EpisodeStats, topics.EPISODE_STATS, self._on_episode, qos.EVENTS)
        node.create_subscription(PolicyWeights, topics.POLICY_WEIGHTS,
                                 lambda m: self.weights_versions.append(m.version), qos.LATCHED)
        node.create_subscription(LearnerStats, topics.LEARNER_STATS, lambda m: setattr(self, "stats", m), qos.EVENTS)
        self.save = node.create_client(SaveCheckpoint, topics.SAVE_CHECKPOINT)
        self._sampling = threading.Event()

    # -- listening ----------------------------------------------------------------------------
    def _on_transition(self, msg: Transition) -> None:
        with self.lock:
            self.publications += 1
            self.seen.setdefault((msg.session, msg.seq), (_stamp(msg.header.stamp), msg.episode, msg.step))
            if msg.command_late:
                self.late.add((msg.session, msg.seq))

    def _on_ack(self, msg: TransitionAck) -> None:
        with self.lock:
            self.acks[msg.session] = msg
            if not self.learner_starts or self.learner_starts[-1][0] != msg.learner_start:
                self.learner_starts.append((msg.learner_start, time.monotonic()))

    def _on_episode(self, msg: EpisodeStats) -> None:
        with self.lock:
            self.episodes.append(msg)

    # -- control ------------------------------------------------------------------------------
    def start(self) -> "FaultRun":
        self.session.start()
        threading.Thread(target=self._sample_memory, daemon=True).start()
        return self

    def _sample_memory(self) -> None:
        while not self._sampling.wait(1.0):
            for managed in self.session.launcher.nodes:
                proc = managed.process
                if proc is None or proc.poll() is not None:
                    continue
                try:
                    with open(f"/proc/{proc.pid}/status") as fh:
                        rss = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    continue
                name = managed.spec.name
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)

    def managed(self, name: str):
        return next(m for m in self.session.launcher.nodes if m.spec.name == name)

    def pid(self, name: str) -> int | None:
        proc = self.managed(name).process
        return proc.pid if proc is not None and proc.poll() is None else None

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if not self.session.running:
                raise RuntimeError(f"the graph stopped while waiting for {what}; see {self.log.name}")
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; see {self.log.name}")

    def received(self) -> int:
        """Transitions the live learner has acknowledged as received, over all sessions."""
        with self.lock:
            return sum(a.received_seq for a in self.acks.values())

    def produced_by_session(self) -> dict[int, int]:
        with self.lock:
            out: dict[int, int] = {}
            for session, seq in self.seen:
                out[session] = max(out.get(session, 0), seq)
            return out

    def wait_training(self, transitions: int = 200, timeout: float = 180.0) -> None:
        self.wait(lambda: self.received() >= transitions and self.weights_versions and max(self.weights_versions) > 0,
                  timeout, f"{transitions} transitions acknowledged and trained weights")
        self.wait(lambda: os.path.exists(os.path.join(self.workdir, "checkpoints", "learner.pt")), timeout,
                  "a first checkpoint")

    def kill(self, name: str, timeout: float = 120.0) -> dict:
        """SIGKILL ``name``; wait for its respawn (and, for the learner, for it to acknowledge
        again). Returns what happened, with times."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        with self.lock:
            starts_before = len(self.learner_starts)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        event = {"node": name, "pid": pid, "at": t0}
        self.wait(lambda: self.pid(name) not in (None, pid), timeout, f"{name} to respawn")
        event["respawned_after_s"] = time.monotonic() - t0
        if name == "learner":
            self.wait(lambda: len(self.learner_starts) > starts_before, timeout, "the new learner's first ack")
            with self.lock:
                event["first_ack_after_s"] = self.learner_starts[-1][1] - t0
            target = sum(self.produced_by_session().values())
            self.wait(lambda: self.received() >= target, timeout, "the learner to catch up")
            event["caught_up_after_s"] = time.monotonic() - t0
        self.kills.append(event)
        return event

    def freeze_and_account(self, timeout: float = 120.0) -> Accounting:
        """Stop production (simulation frozen), let re-sends finish, read a checkpoint back."""
        sim = self.pid("sim")
        os.kill(sim, signal.SIGSTOP)
        try:
            time.sleep(1.0)  # the last steps' transitions reach the monitor
            produced = self.produced_by_session()
            self.wait(lambda: all(self.acks.get(s) is not None and self.acks[s].received_seq >= n
                                  for s, n in produced.items()), timeout, "the learner to hold every transition")
            assert self.save.wait_for_service(timeout_sec=30), "no checkpoint service"
            future = self.save.call_async(SaveCheckpoint.Request())
            self.wait(future.done, timeout, "the checkpoint")
            reply = future.result()
            if not reply.success:
                raise RuntimeError(f"checkpoint refused: {reply.message}")
            state = checkpoint.load(reply.written_path)
        finally:
            os.kill(sim, signal.SIGCONT)
        links = {int(link["session"]): link for link in state["extra"]["links"]}
        stored = 0
        missing = {}
        for session, n in produced.items():
            link = links.get(session, {"contiguous": 0, "above": []})
            held = int(link["contiguous"]) + len(link["above"])
            stored += held
            if held != n:
                missing[session] = n - held
        buffer_size = int(state["buffers"]["rl"]["obs"].shape[0])
        with self.lock:
            late = sum(1 for session, seq in self.late if seq <= produced.get(session, 0))
        return Accounting(produced=sum(produced.values()), stored=stored,
                          duplicates_dropped=int(state["extra"].get("duplicates", 0)),
                          lost=sum(max(0, m) for m in missing.values()), stored_twice=buffer_size - (stored - late),
                          buffer_size=buffer_size, sessions=len(produced), missing_by_session=missing, late=late)

    def control_gaps(self, since_wall: float | None = None) -> float:
        """Longest simulated-time gap between consecutive steps of one episode (s)."""
        with self.lock:
            items = sorted(self.seen.items())
        worst = 0.0
        for (session, seq), (stamp, episode, step) in items:
            following = self.seen.get((session, seq + 1))
            if following and following[1] == episode and following[2] == step + 1:
                worst = max(worst, following[0] - stamp)
        return worst

    def stop(self) -> None:
        self._sampling.set()
        self.session.stop("fault run done")
        self.log.close()
