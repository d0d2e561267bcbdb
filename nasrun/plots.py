"""Plots (matplotlib, Agg backend: no display needed). Install with `pip install 'nasrun[plots]'`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nasrun.errors import NasrunError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NasrunError("plots need matplotlib: pip install 'nasrun[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def anytime_band(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Mean and (population) std per query over runs; shorter runs hold their last value."""
    length = max(len(curve) for curve in curves)
    padded = [list(curve) + [curve[-1]] * (length - len(curve)) for curve in curves if curve]
    means, stds = [], []
    for column in zip(*padded):
        mean = sum(column) / len(column)
        means.append(mean)
        stds.append((sum((v - mean) ** 2 for v in column) / len(column)) ** 0.5)
    return means, stds


def plot_anytime(curves: dict[str, Sequence[Sequence[float]]], path: str | Path, ylabel: str = "best validation score",
                 title: str = "Best so far vs queries (mean ± std over seeds)") -> Path:
    """One line per group: the mean best-so-far curve with a ± std band; written as PNG to `path`."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        means, stds = anytime_band(runs)
        queries = range(1, len(means) + 1)
        axes.plot(queries, means, label=f"{label} (n={len(runs)})")
        axes.fill_between(queries, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.2)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("queries (trials)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
