"""Plots of a training run, for a person to look at rather than read (``python -m hilserl_ros.report``).

    python -m hilserl_ros.report RUN [RUN ...] [--out DIR] [--window 20] [--learner-x update|env]

RUN is any of:

- a rosbag2 directory recorded by the project (MCAP; a bare ``.mcap`` file works too), or a
  directory holding several of them (a split or repeated recording): the ``/learner/stats``
  (LearnerStats) and ``/episode_stats`` (EpisodeStats) topics are read with ``rosbags``;
- a run directory written by ``make train`` (``hilserl_ros.train``): its ``history.csv``
  (one row per episode) and ``learner_stats.csv`` (one row per LearnerStats message);
- those csv files themselves (which is which is told from the header).

A run directory with the csv files is read from them (they cover the whole run); give a bag
directory to read the bag instead. Bags and csv files cannot be mixed in one report.

Writes, into ``--out`` (default ``<first RUN>/report/``): alpha.png, entropy.png (entropy
against the target the temperature is tuned towards, alpha-collapse watchdog periods shaded),
reward.png, success_rate.png and intervention_rate.png (rolling over ``--window`` episodes),
and summary.png with all of them; then prints a short summary and the paths. Why: the field
report's failure (alpha collapsing, the arm never leaving home) shows at a glance on these
plots, and a bag from the real arm is reported the same way as a simulated run.

Episode quantities are plotted over environment steps (EpisodeStats.total_steps, summed over
actors when there are several), learner quantities over the learner's update step (or, with
``--learner-x env``, over the environment steps at the time of each LearnerStats message).
Input without learner statistics (or without episodes) skips those plots with a message.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hilserl_ros import topics

LEARNER_TOPIC = topics.LEARNER_STATS
EPISODE_TOPIC = topics.EPISODE_STATS
LEARNER_TYPE = "hilserl_ros/msg/LearnerStats"
EPISODE_TYPE = "hilserl_ros/msg/EpisodeStats"
HISTORY_CSV = "history.csv"
LEARNER_CSV = "learner_stats.csv"

LEARNER_PLOTS = ("alpha.png", "entropy.png")
EPISODE_PLOTS = ("reward.png", "success_rate.png", "intervention_rate.png")


class ReportError(Exception):
    """The input cannot be reported on (missing, empty, unreadable); the message says why."""


Series = dict[str, np.ndarray]


@dataclass
class RunData:
    """What a report is drawn from: plain arrays, one entry per episode / per LearnerStats.

    episodes: episode, actor, total_steps (per actor, as published), env_steps (all actors),
        steps, reward, success, intervention_rate, autonomous (success with no intervention).
    learner: update_step, alpha, entropy, target_entropy, alpha_collapse, env_steps (NaN when
        unknown), plus whichever other numeric columns the source had.
    """

    episodes: Series | None = None
    learner: Series | None = None
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- loading

def rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start), as train.py shows it."""
    x = np.asarray(values, dtype=float)
    if window < 1:
        raise ValueError("window must be >= 1")
    if x.size == 0:
        return x
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def combined_env_steps(actors: Sequence[str], total_steps: Sequence[float]) -> np.ndarray:
    """Environment steps of all actors together after each episode.

    total_steps counts one actor's steps since it started, so with several actors the run's
    steps are the sum of each actor's latest count; a count that goes down means the actor
    restarted, and its earlier steps are kept rather than lost.
    """
    latest: dict[str, float] = {}
    offset: dict[str, float] = {}
    out = np.empty(len(total_steps), dtype=float)
    for i, (actor, steps) in enumerate(zip(actors, total_steps)):
        steps = float(steps)
        if actor in latest and steps < latest[actor]:
            offset[actor] = offset.get(actor, 0.0) + latest[actor]
        latest[actor] = steps
        out[i] = sum(offset.get(a, 0.0) + s for a, s in latest.items())
    return out


def _episode_series(rows: list[dict]) -> Series:
    """Rows (dicts of plain values, in arrival order) -> episode arrays with derived columns."""
    actors = [str(r.get("actor", "")) for r in rows]
    total = np.array([float(r["total_steps"]) for r in rows])
    success = np.array([bool(r["success"]) for r in rows])
    rate = np.array([float(r["intervention_rate"]) for r in rows])
    if all("intervention_steps" in r for r in rows):
        helped = np.array([int(r["intervention_steps"]) > 0 for r in rows], dtype=bool)
    else:  # history.csv has the rate only
        helped = rate > 0
    return {
        "episode": np.array([float(r.get("episode", i + 1)) for i, r in enumerate(rows)]),
        "actor": np.array(actors, dtype=object),
        "total_steps": total,
        "env_steps": combined_env_steps(actors, total),
        "steps": np.array([float(r.get("steps", np.nan)) for r in rows]),
        "reward": np.array([float(r["reward"]) for r in rows]),
        "success": success,
        "intervention_rate": rate,
        "autonomous": success & ~helped,
    }


def _learner_series(rows: list[dict]) -> Series:
    out: Series = {
        "update_step": np.array([float(r["update_step"]) for r in rows]),
        "alpha": np.array([float(r["alpha"]) for r in rows]),
        "entropy": np.array([float(r.get("entropy", np.nan)) for r in rows]),
        "target_entropy": np.array([float(r.get("target_entropy", np.nan)) for r in rows]),
        "alpha_collapse": np.array([bool(r.get("alpha_collapse", False)) for r in rows]),
        "env_steps": np.array([float(r.get("env_steps", np.nan)) for r in rows]),
    }
    for key in rows[0] if rows else ():
        if key not in out:
            try:
                out[key] = np.array([float(r[key]) for r in rows])
            except (TypeError, ValueError):
                pass  # text columns (the watchdog's warning) are not plotted
    return out


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def csv_kind(path: Path) -> str | None:
    """'episodes' (history.csv), 'learner' (learner_stats.csv) or None, from the header."""
    header, _ = _read_csv(path)
    if {"total_steps", "success", "intervention_rate"} <= set(header):
        return "episodes"
    if "alpha" in header and ({"update", "update_step"} & set(header)):
        return "learner"
    return None


def load_history_csv(path: str | Path) -> Series | None:
    """history.csv of hilserl_ros.train -> episode arrays (None when it has no rows)."""
    path = Path(path)
    header, raw = _read_csv(path)
    missing = {"total_steps", "reward", "success", "intervention_rate"} - set(header)
    if missing:
        raise ReportError(f"{path}: not an episode history (no column {', '.join(sorted(missing))})")
    if not raw:
        return None
    rows = []
    for r in raw:
        row: dict = {k: float(v) for k, v in r.items() if k in ("episode", "total_steps", "steps", "reward",
                                                                 "intervention_rate") and v != ""}
        row["success"] = _parse_bool(r["success"])
        rows.append(row)
    return _episode_series(rows)


def load_learner_csv(path: str | Path, episodes: Series | None = None) -> Series | None:
    """learner_stats.csv of hilserl_ros.train -> learner arrays (None when empty).

    train.py names the update step 'update' and records how many episodes had finished at each
    message ('episodes'); with the episode history that gives the environment steps.
    """
    path = Path(path)
    header, raw = _read_csv(path)
    if not header or not raw:
        return None  # train.py leaves the file empty when no statistics arrived
    if "alpha" not in header or not ({"update", "update_step"} & set(header)):
        raise ReportError(f"{path}: not learner statistics (needs columns alpha and update/update_step)")
    rows = []
    for r in raw:
        row: dict = {}
        for key, value in r.items():
            if key == "alpha_collapse":
                row[key] = _parse_bool(value)
            elif key == "warning":
                continue
            else:
                try:
                    row["update_step" if key == "update" else key] = float(value)
                except (TypeError, ValueError):
                    pass
        if "episodes" in row and episodes is not None:
            done = min(int(row["episodes"]), len(episodes["env_steps"]))
            row["env_steps"] = float(episodes["env_steps"][done - 1]) if done > 0 else 0.0
        rows.append(row)
    return _learner_series(rows)


def _message_fields(msg, names: Sequence[str]) -> dict:
    return {name: getattr(msg, name) for name in names}


_EPISODE_FIELDS = ("episode", "steps", "total_steps", "reward", "success", "intervention_steps",
                   "intervention_rate", "duration_s", "policy_version")
_LEARNER_FIELDS = ("update_step", "alpha", "entropy", "target_entropy", "alpha_collapse", "critic_loss",
                   "actor_loss", "temperature_loss", "q_mean", "action_abs_mean", "action_abs_std",
                   "updates_per_second", "rl_buffer_size", "demo_buffer_size")


def load_bags(paths: Sequence[str | Path]) -> RunData:
    """LearnerStats and EpisodeStats from one or more rosbag2 bags, merged in time order.

    Time is the bag's receive time: it orders messages from several bags and places each
    LearnerStats among the episodes (for its environment-step position).
    """
    from rosbags.rosbag2 import Reader

    from hilserl_ros.recording.types import shared_types

    types = shared_types()
    episodes: list[tuple[int, dict]] = []
    learner: list[tuple[int, dict]] = []
    data = RunData(sources=[str(p) for p in paths])
    for path in paths:
        try:
            with Reader(path) as reader:
                wanted = [c for c in reader.connections if c.topic in (LEARNER_TOPIC, EPISODE_TOPIC)]
                for conn, stamp, raw in reader.messages(connections=wanted):
                    # a topic of the same name but another type is not ours to plot
                    if conn.topic == LEARNER_TOPIC and conn.msgtype == LEARNER_TYPE:
                        msg = types.deserialize(raw, LEARNER_TYPE, getattr(conn.msgdef, "data", None))
                        learner.append((stamp, _message_fields(msg, _LEARNER_FIELDS)))
                    elif conn.topic == EPISODE_TOPIC and conn.msgtype == EPISODE_TYPE:
                        msg = types.deserialize(raw, EPISODE_TYPE, getattr(conn.msgdef, "data", None))
                        row = _message_fields(msg, _EPISODE_FIELDS)
                        row["actor"] = msg.actor_id
                        episodes.append((stamp, row))
        except ReportError:
            raise
        except Exception as exc:  # rosbags raises several types; all mean "cannot read this bag"
            raise ReportError(f"cannot read bag {path}: {exc}") from exc
    episodes.sort(key=lambda item: item[0])
    learner.sort(key=lambda item: item[0])
    if episodes:
        data.episodes = _episode_series([row for _, row in episodes])
    if learner:
        rows = [row for _, row in learner]
        if episodes:
            t_ep = np.array([t for t, _ in episodes], dtype=float)
            steps = np.interp([t for t, _ in learner], t_ep, data.episodes["env_steps"], left=0.0)
            for row, s in zip(rows, steps):
                row["env_steps"] = float(s)
        data.learner = _learner_series(rows)
    return data


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(path.glob("*.mcap")))


def find_bags(root: Path) -> list[Path]:
    """Bag directories (or loose .mcap files) at or below `root`, in path order."""
    if root.is_file():
        return [root] if root.suffix == ".mcap" else []
    if _is_bag_dir(root):
        return [root]
    bags = sorted({p.parent for p in root.rglob("metadata.yaml")})
    loose = sorted(p for p in root.rglob("*.mcap") if not any(b in p.parents for b in bags))
    # a .mcap without metadata (recording killed) is read on its own; group by directory
    bags += sorted({p.parent for p in loose if _is_bag_dir(p.parent)})
    return sorted(bags)


def load_run(paths: Sequence[str | Path]) -> RunData:
    """Detect what each path is (bag, run directory, csv) and load it. Raises ReportError."""
    if not paths:
        raise ReportError("no input given")
    bags: list[Path] = []
    csvs: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ReportError(f"{path}: no such file or directory")
        if path.is_file() and path.suffix == ".csv":
            kind = csv_kind(path)
            if kind is None:
                raise ReportError(f"{path}: neither an episode history nor learner statistics (unknown columns)")
            if kind in csvs:
                raise ReportError(f"two {kind} csv files given ({csvs[kind]}, {path}); report one run at a time")
            csvs[kind] = path
        elif path.is_dir() and ((path / HISTORY_CSV).is_file() or (path / LEARNER_CSV).is_file()):
            for name, kind in ((HISTORY_CSV, "episodes"), (LEARNER_CSV, "learner")):
                if (path / name).is_file():
                    if kind in csvs:
                        raise ReportError(f"two {kind} csv files given ({csvs[kind]}, {path / name})")
                    csvs[kind] = path / name
        else:
            found = find_bags(path)
            if not found:
                raise ReportError(f"{path}: no rosbag2 bag, {HISTORY_CSV} or {LEARNER_CSV} found there")
            bags.extend(found)
    if bags and csvs:
        raise ReportError("give either bags or csv files / run directories, not both")
    if bags:
        data = load_bags(bags)
    else:
        data = RunData(sources=[str(p) for p in csvs.values()])
        if "episodes" in csvs:
            data.episodes = load_history_csv(csvs["episodes"])
        if "learner" in csvs:
            data.learner = load_learner_csv(csvs["learner"], data.episodes)
    if data.episodes is None and data.learner is None:
        raise ReportError(f"no episodes ({EPISODE_TOPIC}) and no learner statistics ({LEARNER_TOPIC}) in "
                          + ", ".join(data.sources))
    if data.learner is None:
        data.notes.append(f"no learner statistics ({LEARNER_TOPIC} / {LEARNER_CSV}): skipping "
                          + ", ".join(LEARNER_PLOTS))
    if data.episodes is None:
        data.notes.append(f"no episodes ({EPISODE_TOPIC} / {HISTORY_CSV}): skipping " + ", ".join(EPISODE_PLOTS))
    return data


def summarize(data: RunData, window: int) -> dict:
    """The numbers printed at the end: the last `window` episodes and the last LearnerStats."""
    out: dict = {"episodes": 0, "env_steps": 0, "window": window}
    if data.episodes is not None:
        ep = data.episodes
        recent = slice(-window, None)
        out.update(
            episodes=len(ep["reward"]),
            env_steps=int(ep["env_steps"][-1]),
            success_rate=float(np.mean(ep["success"][recent])),
            autonomous_rate=float(np.mean(ep["autonomous"][recent])),
            intervention_rate=float(np.mean(ep["intervention_rate"][recent])),
            mean_reward=float(np.mean(ep["reward"][recent])),
        )
    if data.learner is not None:
        ls = data.learner
        out.update(
            updates=int(ls["update_step"][-1]),
            alpha=float(ls["alpha"][-1]),
            entropy=float(ls["entropy"][-1]),
            target_entropy=float(ls["target_entropy"][-1]),
            alpha_collapse_messages=int(np.sum(ls["alpha_collapse"])),
        )
    return out


def format_summary(summary: dict) -> str:
    lines = []
    if "success_rate" in summary:
        n = min(summary["window"], summary["episodes"])
        lines += [
            f"episodes           {summary['episodes']}",
            f"environment steps  {summary['env_steps']}",
            f"success rate       {summary['success_rate']:.0%} (last {n} episodes; "
            f"policy alone, no intervention: {summary['autonomous_rate']:.0%})",
            f"intervention rate  {summary['intervention_rate']:.0%} (last {n} episodes)",
            f"mean reward        {summary['mean_reward']:.3f} (last {n} episodes)",
        ]
    if "alpha" in summary:
        lines += [
            f"learner updates    {summary['updates']}",
            f"last alpha         {summary['alpha']:.4g}",
            f"last entropy       {summary['entropy']:.3f} nats",
            f"last target entropy {summary['target_entropy']:.3f} nats",
            f"alpha collapse     {summary['alpha_collapse_messages']} LearnerStats messages flagged",
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plotting

def _learner_x(data: RunData, learner_x: str) -> tuple[np.ndarray, str]:
    ls = data.learner
    if learner_x == "env" and not np.all(np.isnan(ls["env_steps"])):
        return ls["env_steps"], "environment steps"
    return ls["update_step"], "learner update step"


def _collapse_spans(x: np.ndarray, flags: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous runs of flagged messages as (x start, x end); a run lasts until the next message."""
    spans = []
    i = 0
    while i < len(flags):
        if flags[i]:
            j = i
            while j + 1 < len(flags) and flags[j + 1]:
                j += 1
            end = x[j + 1] if j + 1 < len(x) else x[j]
            spans.append((float(x[i]), float(end)))
            i = j + 1
        else:
            i += 1
    return spans


def shade_collapse(ax, x: np.ndarray, flags: np.ndarray) -> None:
    """Shade the periods the learner's watchdog reported alpha collapse (a line for a lone message at the end)."""
    for k, (start, end) in enumerate(_collapse_spans(x, flags)):
        label = "alpha collapse" if k == 0 else None
        if end > start:
            ax.axvspan(start, end, color="tab:red", alpha=0.2, label=label)
        else:
            ax.axvline(start, color="tab:red", alpha=0.5, label=label)


def draw_alpha(ax, data: RunData, learner_x: str) -> None:
    x, label = _learner_x(data, learner_x)
    alpha = data.learner["alpha"]
    ax.plot(x, alpha, color="tab:red", label="alpha")
    if np.all(alpha[np.isfinite(alpha)] > 0) and np.any(np.isfinite(alpha)):
        ax.set_yscale("log")  # a collapsing temperature spans decades
    shade_collapse(ax, x, data.learner["alpha_collapse"])
    ax.set(title="SAC temperature alpha", xlabel=label, ylabel="alpha")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)


def draw_entropy(ax, data: RunData, learner_x: str) -> None:
    x, label = _learner_x(data, learner_x)
    ls = data.learner
    ax.plot(x, ls["entropy"], color="tab:blue", label="policy entropy")
    ax.plot(x, ls["target_entropy"], "--", color="black", label="target entropy")
    shade_collapse(ax, x, ls["alpha_collapse"])
    ax.set(title="policy entropy vs target", xlabel=label, ylabel="nats")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)


def draw_reward(ax, data: RunData, window: int) -> None:
    ep = data.episodes
    ax.plot(ep["env_steps"], ep["reward"], ".", color="tab:purple", alpha=0.35, label="episode")
    ax.plot(ep["env_steps"], rolling_mean(ep["reward"], window), color="tab:purple", label=f"mean of {window}")
    ax.set(title="episode reward", xlabel="environment steps", ylabel="reward")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)


def draw_success(ax, data: RunData, window: int) -> None:
    ep = data.episodes
    ax.plot(ep["env_steps"], rolling_mean(ep["autonomous"], window), color="tab:green",
            label="policy alone (no intervention)")
    ax.plot(ep["env_steps"], rolling_mean(ep["success"], window), color="tab:green", alpha=0.4,
            label="with interventions")
    ax.set(title=f"success rate (last {window} episodes)", xlabel="environment steps", ylim=(-0.02, 1.02))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)


def draw_intervention(ax, data: RunData, window: int) -> None:
    ep = data.episodes
    ax.plot(ep["env_steps"], ep["intervention_rate"], ".", color="tab:orange", alpha=0.35, label="episode")
    ax.plot(ep["env_steps"], rolling_mean(ep["intervention_rate"], window), color="tab:orange",
            label=f"mean of {window}")
    ax.set(title=f"intervention rate (last {window} episodes)", xlabel="environment steps",
           ylim=(-0.02, 1.02))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)


def write_plots(data: RunData, out_dir: str | Path, window: int = 20, learner_x: str = "update") -> list[Path]:
    """One PNG per quantity plus summary.png with all of them; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    panels: list[tuple[str, Callable]] = []
    if data.learner is not None:
        panels += [("alpha.png", lambda ax: draw_alpha(ax, data, learner_x)),
                   ("entropy.png", lambda ax: draw_entropy(ax, data, learner_x))]
    if data.episodes is not None:
        panels += [("reward.png", lambda ax: draw_reward(ax, data, window)),
                   ("success_rate.png", lambda ax: draw_success(ax, data, window)),
                   ("intervention_rate.png", lambda ax: draw_intervention(ax, data, window))]
    written = []
    for name, draw in panels:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        draw(ax)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(out / name)
    if panels:
        cols = 3 if len(panels) > 2 else len(panels)
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
        for ax, (_, draw) in zip(axes.flat, panels):
            draw(ax)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle("training report: " + ", ".join(Path(s).name or s for s in data.sources), fontsize="medium")
        fig.tight_layout()
        fig.savefig(out / "summary.png", dpi=100)
        plt.close(fig)
        written.append(out / "summary.png")
    return written


# ----------------------------------------------------------------------------- command

def default_out_dir(first_input: str | Path) -> Path:
    """<run>/report/: beside a csv file, inside a run or bag directory."""
    path = Path(first_input)
    base = path.parent if path.is_file() else path
    return base / "report"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hilserl_ros.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="RUN",
                        help="bag directory (or .mcap), directory of bags, run directory, or csv file(s)")
    parser.add_argument("--out", default=None, help="output directory (default: <first RUN>/report/)")
    parser.add_argument("--window", type=int, default=20, help="episodes the rolling rates are taken over")
    parser.add_argument("--learner-x", choices=("update", "env"), default="update",
                        help="x axis of alpha and entropy: learner update step or environment steps")
    opts = parser.parse_args(argv)
    if opts.window < 1:
        parser.error("--window must be >= 1")
    try:
        data = load_run(opts.inputs)
    except ReportError as exc:
        parser.error(str(exc))  # exits with status 2, as argparse does for any bad input
    for note in data.notes:
        print(f"[report] {note}")
    out_dir = Path(opts.out) if opts.out else default_out_dir(opts.inputs[0])
    written = write_plots(data, out_dir, opts.window, opts.learner_x)
    print(f"[report] {', '.join(data.sources)}")
    print(format_summary(summarize(data, opts.window)))
    for path in written:
        print(f"[report] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
