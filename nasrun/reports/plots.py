"""Plots of runs, shared by the run report (`nasrun-report`) and `nasrun-compare`.

The run report (written at the end of every run into `<run dir>/plots/`, redrawn by `nasrun-report RUN_DIR`):
  best_so_far_trials.png   each trial's score and the best so far, by trial
  best_so_far_time.png     the same against wall-clock time since the run started
  alphas_<cell>.png        α (softmax weights) per edge and op across epochs, when alphas.jsonl exists
  best_architecture.png    the best architecture as its space draws it (`SearchSpace.graphs`, rendered by
                           `nasrun.reports.drawing`: graphviz when `dot` exists, else matplotlib)
Matplotlib is used through its object API (no pyplot), so no display or backend is needed.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from nasrun.assessment.objectives import Objectives
from nasrun.errors import CheckpointError, RunDirError
from nasrun.records import Trial
from nasrun.reports.drawing import draw_architecture
from nasrun.reports.figures import new_figure, save_figure
from nasrun.rundir import RunDir
from nasrun.state import JsonLines, read_json_object

log = logging.getLogger("nasrun")


def score_label(trials: list[Trial]) -> str:
    return "fitness" if any("fitness" in t.metrics for t in trials) else "validation accuracy"


# --- best so far -------------------------------------------------------------------------------------------
def best_so_far(scores: list[float]) -> list[float]:
    best, out = -math.inf, []
    for score in scores:
        best = max(best, score)
        out.append(best if best > -math.inf else math.nan)
    return out


def plot_best_so_far(trials: list[Trial], path: str | Path, times: list[float] | None = None) -> Path:
    """Each trial's score (dots; failed trials as crosses at the bottom) and the running best (a step line),
    against the trial number, or against `times` (seconds since the run started) when given."""
    fig = new_figure()
    ax = fig.add_subplot()
    x = times if times is not None else list(range(1, len(trials) + 1))
    scores = [t.score() for t in trials]
    ok = [(xi, s) for xi, s in zip(x, scores) if s > -math.inf]
    failed = [xi for xi, s in zip(x, scores) if s == -math.inf]
    if ok:
        ax.scatter(*zip(*ok), s=18, color="tab:blue", alpha=0.6, label="trial")
    if failed:
        floor = min((s for _, s in ok), default=0.0)
        ax.scatter(failed, [floor] * len(failed), marker="x", color="tab:red", label="failed trial")
    ax.step(x, best_so_far(scores), where="post", color="tab:orange", linewidth=2, label="best so far")
    ax.set_xlabel("wall-clock time since start (s)" if times is not None else "trial")
    ax.set_ylabel(score_label(trials))
    ax.set_title(f"best so far: {max(scores):.4f}" if ok else "no successful trial")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


# --- α trajectories ---------------------------------------------------------------------------------------
def read_alphas(path: str | Path) -> list[dict]:
    """The records of alphas.jsonl by epoch; an epoch written twice (a resumed search) keeps its last record."""
    by_epoch = {}
    for line in JsonLines(path, what="α log").lines():
        try:
            record = json.loads(line)
            by_epoch[record["epoch"]] = record
        except (ValueError, KeyError, TypeError):
            continue  # not a record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def plot_alphas(records: list[dict], out_dir: str | Path) -> list[Path]:
    """One PNG per cell: a small panel per edge with one line per op (softmax weight vs epoch)."""
    if not records:
        return []
    ops, epochs = records[-1]["ops"], [r["epoch"] for r in records]
    marker = "o" if len(epochs) <= 12 else None  # a line of one point is invisible
    paths = []
    for cell in records[-1]["alphas"]:
        series = [r["alphas"][cell] for r in records]  # epoch × edge × op
        edges = len(series[-1])
        columns = min(edges, 4)
        rows = math.ceil(edges / columns)
        height = 2.2 * rows + 0.9
        fig = new_figure(3.0 * columns, height, layout=None)
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.5 / height, top=1 - 0.75 / height, hspace=0.45,
                            wspace=0.12)
        axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        for edge in range(rows * columns):
            ax = axes[edge // columns][edge % columns]
            if edge >= edges:
                ax.set_visible(False)
                continue
            for index, op in enumerate(ops):
                ax.plot(epochs, [s[edge][index] for s in series], label=op, marker=marker, markersize=3)
            ax.set_title(f"edge {edge}", fontsize=9)
            ax.tick_params(labelbottom=True)
            ax.grid(alpha=0.3)
        from matplotlib.ticker import MaxNLocator

        axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))  # shared by every panel
        fig.supxlabel("epoch")
        fig.supylabel("α (softmax)", x=0.01)
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncols=min(len(ops), 4), fontsize=8,
                   frameon=False)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(cell))
        paths.append(save_figure(fig, Path(out_dir) / f"alphas_{safe}.png"))
    return paths


# --- Pareto front -------------------------------------------------------------------------------------------
def plot_pareto(trials: list[Trial], objectives, path: str | Path) -> Path:
    """Every successful trial on the first two objectives, the Pareto front highlighted and joined,
    constraint violators crossed."""
    first, second = objectives.objectives[:2]
    front_ids = {t.id for t in objectives.pareto_front(trials)}
    measured = [t for t in trials if objectives.point(t) is not None]
    groups = {
        "feasible": [t for t in measured if t.id not in front_ids and objectives.violation(t.metrics) == 0],
        "violates constraints": [t for t in measured if objectives.violation(t.metrics) > 0],
        "Pareto front": sorted((t for t in measured if t.id in front_ids), key=lambda t: t.metrics[first.metric]),
    }
    styles = {"feasible": dict(c="tab:gray", marker="o", alpha=0.6),
              "violates constraints": dict(c="tab:red", marker="x"),
              "Pareto front": dict(c="tab:blue", marker="o", s=60, edgecolors="black", zorder=3)}
    fig = new_figure(6, 4.5)
    ax = fig.add_subplot()
    for label, group in groups.items():
        if group:
            ax.scatter([t.metrics[first.metric] for t in group], [t.metrics[second.metric] for t in group],
                       label=f"{label} ({len(group)})", **styles[label])
    front = groups["Pareto front"]
    if len(front) > 1:
        ax.plot([t.metrics[first.metric] for t in front], [t.metrics[second.metric] for t in front],
                c="tab:blue", alpha=0.5)
    for trial in front:
        ax.annotate(str(trial.id), (trial.metrics[first.metric], trial.metrics[second.metric]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{first.metric} ({first.direction})")
    ax.set_ylabel(f"{second.metric} ({second.direction})")
    ax.set_title(f"Pareto front: {len(front)} of {len(trials)} trials")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# --- anytime curves (nasrun-compare) ------------------------------------------------------------------------
def anytime_band(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    """Mean and (population) std per query over runs; shorter runs hold their last value."""
    length = max(len(curve) for curve in curves)
    padded = [list(curve) + [curve[-1]] * (length - len(curve)) for curve in curves if curve]
    means, stds = [], []
    for column in zip(*padded):
        mean = sum(column) / len(column)
        means.append(mean)
        stds.append((sum((v - mean) ** 2 for v in column) / len(column)) ** 0.5)
    return means, stds


def plot_anytime(curves: dict[str, list[list[float]]], path: str | Path, ylabel: str = "best validation score",
                 title: str = "Best so far vs queries (mean ± std over seeds)") -> Path:
    """One line per group: the mean best-so-far curve with a ± std band."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(7, 4.5)
    ax = fig.add_subplot()
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        means, stds = anytime_band(runs)
        queries = range(1, len(means) + 1)
        ax.plot(queries, means, label=f"{label} (n={len(runs)})")
        ax.fill_between(queries, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("queries (trials)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


# --- the run report ----------------------------------------------------------------------------------------
def wall_times(run_dir: Path, trials: list[Trial]) -> list[float]:
    """When each trial finished (from the runner checkpoint), else the running sum of trial durations."""
    finished = RunDir(run_dir).finished_at()
    if trials and all(t.id in finished for t in trials):
        return [finished[t.id] for t in trials]
    total, times = 0.0, []
    for trial in trials:
        total += trial.seconds or 0.0
        times.append(total)
    return times


def pareto_objectives(path: Path) -> Objectives:
    record = read_json_object(path, "Pareto front", ("objectives", "constraints"))
    try:
        return Objectives(record["objectives"], record["constraints"] or None)
    except Exception as err:  # noqa: BLE001 - whatever a hand-edited record makes Objectives reject
        raise CheckpointError(f"Pareto front {path} names unusable objectives ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:120] if str(err) else ''})") from None


def write_run_report(run_dir: str | Path) -> list[Path]:
    """Draw every plot the run's files allow. A plot that fails to draw is a warning, never an error; an
    unreadable run file or a failed write (read-only directory, full disk) is a one-line error."""
    run = RunDir(run_dir)
    out = run.plots
    trials = run.read_trials()
    jobs = []
    if trials:
        jobs.append(("best so far by trial", lambda: [plot_best_so_far(trials, out / "best_so_far_trials.png")]))
        jobs.append(("best so far by time", lambda: [plot_best_so_far(trials, out / "best_so_far_time.png",
                                                                      wall_times(run.path, trials))]))
    if trials and run.pareto.exists():
        objectives = pareto_objectives(run.pareto)
        jobs.append(("Pareto front", lambda: [plot_pareto(trials, objectives, run.pareto_plot)]))
    if run.alphas.exists():
        jobs.append(("α trajectories", lambda: plot_alphas(read_alphas(run.alphas), out)))
    if run.best.exists():
        spec = read_json_object(run.best, "best architecture", ("space", "arch"))
        jobs.append(("best architecture", lambda: [draw_architecture(spec["space"], spec["arch"],
                                                                     out / "best_architecture.png")]))
    written = []
    for name, job in jobs:
        try:
            written += [p for p in job() if p is not None]
        except RunDirError:  # a write that failed: the next one would too
            raise
        except Exception as err:  # noqa: BLE001 - a report must never fail the run it describes
            log.warning("report: could not draw %s: %s: %s", name, type(err).__name__, err)
    return written
