"""Figures of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nasrun.records import Trial


def plot_pareto(trials: Sequence[Trial], objectives, path: str | Path) -> Path:
    """Scatter of every successful trial on the first two objectives, the Pareto front highlighted
    and joined, infeasible trials marked with crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for label, group in groups.items():
        if group:
            axes.scatter([t.metrics[first.metric] for t in group], [t.metrics[second.metric] for t in group],
                         label=f"{label} ({len(group)})", **styles[label])
    front = groups["Pareto front"]
    if len(front) > 1:
        axes.plot([t.metrics[first.metric] for t in front], [t.metrics[second.metric] for t in front],
                  c="tab:blue", alpha=0.5)
    for trial in front:
        axes.annotate(str(trial.id), (trial.metrics[first.metric], trial.metrics[second.metric]),
                      textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel(f"{first.metric} ({first.direction})")
    axes.set_ylabel(f"{second.metric} ({second.direction})")
    axes.set_title(f"Pareto front: {len(front)} of {len(trials)} trials")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
