"""Reward classifier node (/reward_classifier): P(success) of the cameras' newest frames.

Loads a classifier written by ``make train-reward-classifier`` (safetensors; no pickle),
subscribes the cameras of the observation in use (the actor's description, so it sees what
the policy sees: same crop and size), and at ``control_rate`` publishes a
``SuccessPrediction`` on /reward_classifier/prediction for the newest set of frames, once per
new set: the probability, the live ``threshold`` it was compared with, and the verdict. The
task node (/task) turns it into the episode's success; Foxglove plots the probability.

A camera whose newest frame is older than its ``max_age`` plus one control period holds the
predictions back (warned once per outage): the task node then stops the episode with that
reason instead of judging on an old picture.

Vetoes (HIL-SERL's hard negatives, learnt while training runs): the task node publishes a
``RewardVeto`` on /reward_classifier/veto when the operator presses FAILURE right after the
classifier ended an episode. The features of the vetoed frames and of the ``veto_frames - 1``
judged before them join the classifier's training features as failures and the head is
retrained on a worker thread (a fraction of a second; predictions go on with the old head
meanwhile), then written to ``save_path`` so the next session starts from it. Predictions
carry the count of vetoes and hard negatives; a count includes a veto only once its file is on
disk.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from rclpy.node import Node

from hilserl_ros import topics
from hilserl_ros.learning.reward_classifier import DEFAULT_PATH, RewardClassifier, VetoLearner, file_sha256
from hilserl_ros.msg import RewardVeto, SuccessPrediction
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare, observation_params
from hilserl_ros.ros.messages import seconds, subscribe_camera, to_stamp
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter

PARAMS = [
    *observation_params("the observation whose cameras (topics, crop, size) the classifier reads: pixels"),
    ParamSpec("model", DEFAULT_PATH, "classifier file of make train-reward-classifier", read_only=True),
    ParamSpec("threshold", 0.5, "P(success) at or above which a step is a success", min=0.0, max=1.0),
    ParamSpec("control_rate", 10.0, "predictions per second at most (one per new set of frames)", min=1.0,
              max=100.0, unit="Hz"),
    ParamSpec("learn_from_vetoes", True, "retrain on the operator's vetoes (their frames become hard negatives)"),
    ParamSpec("veto_frames", 5, "frames a veto makes hard negatives: the vetoed one and those judged just before",
              min=1, max=50),
    ParamSpec("save_path", "", "where the classifier retrained on vetoes is written after each one (empty: next "
              "to model, as <name>.vetoed.safetensors)", read_only=True),
]


class RewardClassifierNode(Node):
    def __init__(self, **node_options):
        super().__init__("reward_classifier", **node_options)
        import torch

        torch.set_num_threads(1)
        self.params = declare(self, PARAMS)
        path = self.params["model"]
        if not os.path.exists(path):
            raise FileNotFoundError(f"reward classifier {path!r} not found: train one with make "
                                    f"train-reward-classifier, or run with reward:=buttons")
        self.model = RewardClassifier.load(path)
        self.model_name = f"{os.path.basename(path)}@{file_sha256(path)[:12]}"
        self.save_path = self.params["save_path"] or path.removesuffix(".safetensors") + ".vetoed.safetensors"
        try:
            self.vetoes: VetoLearner | None = VetoLearner(self.model, frames_per_veto=self.params["veto_frames"])
        except ValueError as err:  # a file from before vetoes: it still judges
            self.vetoes = None
            self.get_logger().warning(f"{path}: {err}; vetoes will not retrain it")
        self.params.on_change("veto_frames", lambda v: setattr(self.vetoes, "frames_per_veto", v) if self.vetoes
                              else None)
        self.retrainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veto")  # one retrain at a time
        spec = load_observation(self.params["task"], self.params["observation"], self.params["observation_file"] or None)
        self.spec = spec
        self.cameras = {c.name: c for c in spec.cameras}
        missing = [c for c in self.model.cameras if c not in self.cameras]
        if missing:
            raise ValueError(f"{path} judges camera(s) {missing}, which observation {spec.label} does not have "
                             f"(it has {sorted(self.cameras)})")
        sizes = {self.cameras[c].size for c in self.model.cameras}
        if sizes != {self.model.image_size}:
            raise ValueError(f"{path} takes {self.model.image_size} px frames; observation {spec.label} makes {sizes}")
        self.frames: dict[str, tuple[np.ndarray, float]] = {}
        self.last_judged: tuple | None = None
        self.stale_since: float | None = None
        self.drops = DropCounter(self.get_logger(), "camera frame")
        self.pub = self.create_publisher(SuccessPrediction, topics.REWARD_PREDICTION, qos.EVENTS)
        for name in self.model.cameras:
            subscribe_camera(self, spec, self.cameras[name], self._on_frame, self.drops, qos.SENSOR)
        self.create_subscription(RewardVeto, topics.REWARD_VETO, self._on_veto, qos.EVENTS)
        self.timer = self.create_timer(1.0 / self.params["control_rate"], self._predict)
        self.params.bind_rate("control_rate", self.timer)
        self.predictions = 0
        self.get_logger().info(f"{self.model_name}: cameras {', '.join(self.model.cameras)}, threshold "
                               f"{self.params['threshold']}")

    def _on_frame(self, camera, view: np.ndarray, stamp: float) -> None:
        self.frames[camera.name] = (view, stamp)

    def _predict(self) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        period = 1.0 / self.params["control_rate"]
        stale = [name for name in self.model.cameras
                 if name not in self.frames or now - self.frames[name][1] > self.cameras[name].max_age + period]
        if stale:
            if self.stale_since is None:
                self.stale_since = time.monotonic()
                self.get_logger().warning(f"no fresh frame of camera(s) {', '.join(stale)}: no predictions until "
                                          f"they come back (the task node stops the episode)")
            return
        if self.stale_since is not None:
            self.get_logger().info(f"cameras back after {time.monotonic() - self.stale_since:.1f} s")
            self.stale_since = None
        stamps = tuple(self.frames[name][1] for name in self.model.cameras)
        if stamps == self.last_judged:
            return  # nothing new to judge
        self.last_judged = stamps
        probability, features = self.model.judge({n: self.frames[n][0][None] for n in self.model.cameras})
        probability = float(probability[0])
        if self.vetoes is not None:
            self.vetoes.remember(min(stamps), features[0])  # the stamp a veto names
        threshold = float(self.params["threshold"])
        msg = SuccessPrediction(probability=probability, threshold=threshold, success=probability >= threshold,
                                model=self.model_name, vetoes=self.vetoes.vetoes if self.vetoes else 0,
                                hard_negatives=self.vetoes.hard_negatives if self.vetoes else 0)
        msg.header.stamp = to_stamp(min(stamps))
        self.pub.publish(msg)
        self.predictions += 1

    def _on_veto(self, msg: RewardVeto) -> None:
        stamp = seconds(msg.header.stamp)
        if self.vetoes is None or not self.params["learn_from_vetoes"]:
            self.get_logger().info(f"veto of episode {msg.episode} (p={msg.probability:.2f}) not learnt: "
                                   + ("learn_from_vetoes is false" if self.vetoes else "the file has no training "
                                      "features"))
            return
        self.retrainer.submit(self._learn, msg.episode, stamp, float(self.params["threshold"]))

    def _learn(self, episode: int, stamp: float, threshold: float) -> None:
        try:
            # on disk before the predictions' counts say the veto was learnt
            done = self.vetoes.veto(stamp, threshold, persist=lambda model: model.save(self.save_path))
            if not done["added"]:
                self.get_logger().warning(f"veto of episode {episode}: {done['reason']} ({stamp:.3f})")
                return
            self.get_logger().info(
                f"veto of episode {episode}: {done['added']} frames are hard negatives ({done['hard_negatives']} "
                f"in {self.vetoes.vetoes} vetoes); p on them {done['p_before']:.2f} -> {done['p_after']:.2f}, "
                f"retrained in {done['seconds']:.2f} s, written to {self.save_path}")
        except Exception as err:  # a worker thread's error would vanish: say it, keep judging
            self.get_logger().error(f"retraining on the veto of episode {episode} failed: {err!r}")

    def destroy_node(self):
        self.retrainer.shutdown(wait=True)
        return super().destroy_node()


def main():
    return run_node(RewardClassifierNode)


if __name__ == "__main__":
    raise SystemExit(main())
