"""Checkpoints that survive Ctrl-C at any moment.

A checkpoint is written to ``<name>.tmp`` in the same directory, flushed and fsynced, then
renamed over ``<name>`` (``os.replace`` is atomic on POSIX): at every instant the previous
checkpoint or the new one is complete on disk, never neither. The old one is never deleted
first. Everything saved is tensors and plain Python values, so loading uses
``torch.load(weights_only=True)`` and never unpickles arbitrary objects.
"""
from __future__ import annotations

import glob
import os

import torch

SUFFIX = ".pt"


def save_atomic(state: dict, path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself reaches the disk
    finally:
        os.close(dir_fd)
    return path


def load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def save_training_state(path: str, agent, buffers: dict | None = None, extra: dict | None = None) -> str:
    """Agent (networks, optimisers, alpha, counters, RNG), buffers and ``extra`` counters."""
    state = {"agent": agent.state_dict(), "buffers": {k: b.state_dict() for k, b in (buffers or {}).items()},
             "extra": dict(extra or {})}
    return save_atomic(state, path)


def restore_training_state(path: str, agent, buffers: dict | None = None) -> dict:
    """Load into ``agent`` and ``buffers``; returns the ``extra`` dict saved with them. A
    checkpoint that does not fit raises ValueError before anything is loaded."""
    state = load(path)
    agent.check_state_dict(state["agent"])
    for name, buffer in (buffers or {}).items():
        if name in state["buffers"]:
            buffer.check_state_dict(state["buffers"][name])
    agent.load_state_dict(state["agent"])
    for name, buffer in (buffers or {}).items():
        if name in state["buffers"]:
            buffer.load_state_dict(state["buffers"][name])
    return state["extra"]


def newest_intact(directory: str, pattern: str = "*" + SUFFIX) -> str | None:
    """The most recent checkpoint in ``directory`` that loads; a damaged file is skipped."""
    candidates = sorted(glob.glob(os.path.join(directory, pattern)), key=os.path.getmtime, reverse=True)
    for path in candidates:
        try:
            load(path)
        except Exception:
            continue
        return path
    return None
