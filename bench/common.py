"""Shared pieces of the benchmarks: timing with warm-up and repetitions, the machine's matmul
throughput (the FLOP bound), and results written with the command and library versions."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata

import torch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def rate(fn, work: int, repeats: int = 5, warmup: int = 1) -> dict:
    """Run ``fn`` (which does ``work`` units) ``warmup + repeats`` times; units per second."""
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(work / (time.perf_counter() - start))
    return summary(rates)


def summary(rates: list[float]) -> dict:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": len(rates)}


def interleaved(fns: dict, work: dict, repeats: int = 5, warmup: int = 1) -> dict:
    """Like :func:`rate` for several contenders, alternating them run by run so that machine
    noise hits every contender alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    rates = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            rates[name].append(work[name] / (time.perf_counter() - start))
    return {name: summary(r) for name, r in rates.items()}


def matmul_gflops(m: int = 256, k: int = 256, n: int = 256, seconds: float = 1.0) -> float:
    """float32 matmul throughput of this machine at the benchmark's layer shapes."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(10):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            a @ b
        count += 50
    return 2.0 * m * k * n * count / (time.perf_counter() - start) / 1e9


def versions(*names: str) -> dict:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write(name: str, payload: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    payload = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), **payload}
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    return path
