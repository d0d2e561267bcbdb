"""Plots of runs, shared by the run report (nasrun/reports/run_report.py) and `nasrun-compare`.

Every plot is titled with what it shows and the run it comes from (strategy · space · estimator · dataset ·
seed), keeps its legend beside the axes (never over the points), and counts trials by their ids (0-based,
as trials.jsonl and the tables write them) on integer ticks. Matplotlib is used through its object API
(no pyplot), so no display or backend is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

from nasrun.records import Trial
from nasrun.reports.figures import new_figure, save_figure


def score_label(trials: list[Trial]) -> str:
    return "fitness" if any("fitness" in t.metrics for t in trials) else "validation accuracy"


def direction_label(metric: str, direction: str) -> str:
    """`latency_ms (lower is better)`: a direction never reads as a unit (`(min)` looked like minutes)."""
    return f"{metric} ({'higher' if direction == 'max' else 'lower'} is better)"


def legend_beside(ax, **kwargs) -> None:
    """The legend right of the axes (constrained layout makes room), so it hides no point."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8,
                  **kwargs)


def integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def titled(ax, title: str, context: str | None) -> None:
    ax.set_title(f"{title}\n{context}" if context else title, fontsize=10)


# --- best so far -------------------------------------------------------------------------------------------
def best_so_far(scores: list[float]) -> list[float]:
    best, out = -math.inf, []
    for score in scores:
        best = max(best, score)
        out.append(best if best > -math.inf else math.nan)
    return out


def violates(trial: Trial) -> bool:
    """A successful trial outside the constraints (its fitness is -inf, but it did not fail)."""
    return trial.ok and not trial.metrics.get("feasible", 1)


def plot_best_so_far(trials: list[Trial], path: str | Path, times: list[float] | None = None,
                     context: str | None = None, note: str | None = None) -> Path:
    """Each trial's score (dots, one colour per fidelity in a multi-fidelity search), the best so far (a step
    line per fidelity), failed trials and constraint violators marked apart at the bottom; against trial
    ids, or against `times` (seconds since the run started) when given."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    x = times if times is not None else [t.id for t in trials]
    scored = [(xi, t) for xi, t in zip(x, trials) if t.score() > -math.inf]
    floor = min((t.score() for _, t in scored), default=0.0)
    fidelities = sorted({t.fidelity for _, t in scored if t.fidelity is not None})
    for number, fidelity in enumerate(fidelities or [None]):
        group = [(xi, t) for xi, t in scored if t.fidelity == fidelity or fidelity is None]
        colour = f"C{number}" if fidelities else "tab:blue"
        label = f"{fidelity} epoch{'s' if fidelity != 1 else ''}" if fidelity is not None else "trial"
        ax.scatter([xi for xi, _ in group], [t.score() for _, t in group], s=18, color=colour, alpha=0.6,
                   label=f"{label} ({len(group)})")
        steps = best_so_far([t.score() for _, t in group])
        ax.step([xi for xi, _ in group], steps, where="post", color=colour if fidelities else "tab:orange",
                linewidth=2, label=f"best so far, {label}" if fidelities else "best so far")
    for kind, chosen, style in (("failed", [t for t in trials if not t.ok], dict(marker="x", color="tab:red")),
                                ("violates constraints", [t for t in trials if violates(t)],
                                 dict(marker="v", color="tab:purple"))):
        if chosen:
            xs = [xi for xi, t in zip(x, trials) if t in chosen]
            ax.scatter(xs, [floor] * len(xs), label=f"{kind} ({len(chosen)})", **style)
    if times is None:
        integer_ticks(ax.xaxis)
    ax.set_xlabel("wall-clock time since start (s)" if times is not None else "trial id (queries, in order)")
    ax.set_ylabel(score_label(trials))
    best = max((t.score() for _, t in scored), default=None)
    headline = f"best so far: {best:.4f}" if best is not None else "no successful trial"
    titled(ax, headline + (f" — {note}" if note else ""), context)
    ax.grid(alpha=0.3)
    legend_beside(ax)
    return save_figure(fig, path)


# --- Pareto front -------------------------------------------------------------------------------------------
def plot_pareto(trials: list[Trial], objectives, path: str | Path, context: str | None = None) -> Path:
    """Every successful trial on the first two objectives, the Pareto front highlighted and joined,
    constraint violators crossed, and each constraint on those two metrics drawn as its bound."""
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
    fig = new_figure(7.5, 4.8)
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
    draw_constraints(ax, objectives.constraints, first.metric, second.metric)
    ax.set_xlabel(direction_label(first.metric, first.direction))
    ax.set_ylabel(direction_label(second.metric, second.direction))
    titled(ax, f"Pareto front: {len(front)} of {len(trials)} trials (labels: trial ids)", context)
    legend_beside(ax)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def draw_constraints(ax, constraints, x_metric: str, y_metric: str) -> None:
    """Each bound on the plotted metrics as a dashed line, the side that violates it shaded."""
    for constraint in constraints:
        for bound, side in ((constraint.max, "max"), (constraint.min, "min")):
            if bound is None or constraint.metric not in (x_metric, y_metric):
                continue
            sign = "≤" if side == "max" else "≥"
            label = f"constraint {constraint.metric} {sign} {bound:g}"
            vertical = constraint.metric == x_metric
            line = ax.axvline if vertical else ax.axhline
            line(bound, color="tab:red", linestyle="--", linewidth=1.2, label=label)
            low, high = ax.get_xlim() if vertical else ax.get_ylim()
            span = ax.axvspan if vertical else ax.axhspan
            span(*((bound, max(high, bound)) if side == "max" else (min(low, bound), bound)), color="tab:red",
                 alpha=0.06)
            (ax.set_xlim if vertical else ax.set_ylim)(low, high)


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
                 title: str = "Best so far vs queries (mean ± std over seeds)", context: str | None = None) -> Path:
    """One line per group: the mean best-so-far curve with a ± std band."""
    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        means, stds = anytime_band(runs)
        queries = range(1, len(means) + 1)
        ax.plot(queries, means, label=f"{label} (n={len(runs)})")
        ax.fill_between(queries, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.2)
    integer_ticks(ax.xaxis)
    ax.set_xlabel("queries (trials evaluated)")
    ax.set_ylabel(ylabel)
    titled(ax, title, context)
    ax.grid(alpha=0.3)
    legend_beside(ax)
    return save_figure(fig, path)
