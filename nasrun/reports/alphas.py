"""α over epochs of a differentiable search (alphas.jsonl): one PNG per cell, a panel per edge named by the
nodes it joins (`node 2 ← node 0`, from the space's `edge_names`), one line per op."""

from __future__ import annotations

import json
import math
from pathlib import Path

from nasrun.reports.figures import new_figure, save_figure
from nasrun.spaces import space_class
from nasrun.state import JsonLines


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


def edge_names(space: str | None, edges: int) -> list[str]:
    """The space's names of a cell's edges ("node 1 ← input"); "edge i" where the space gives none."""
    cls = space_class(space) if space else None
    names = cls.edge_names(edges) if cls is not None else None
    return names or [f"edge {edge}" for edge in range(edges)]


def plot_alphas(records: list[dict], out_dir: str | Path, space: str | None = None,
                context: str | None = None) -> list[Path]:
    """One PNG per cell: a small panel per edge with one line per op (softmax weight vs epoch)."""
    from matplotlib.ticker import MaxNLocator

    if not records:
        return []
    ops, epochs = records[-1]["ops"], [r["epoch"] for r in records]
    marker = "o" if len(epochs) <= 12 else None  # a line of one point is invisible
    paths = []
    for cell in records[-1]["alphas"]:
        series = [r["alphas"][cell] for r in records]  # epoch × edge × op
        edges = len(series[-1])
        names = edge_names(space, edges)
        columns = min(edges, 4)
        rows = math.ceil(edges / columns)
        height = 2.2 * rows + 1.3
        fig = new_figure(3.0 * columns, height, layout=None)
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.5 / height, top=1 - 1.15 / height, hspace=0.5,
                            wspace=0.12)
        axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        for edge in range(rows * columns):
            ax = axes[edge // columns][edge % columns]
            if edge >= edges:
                ax.set_visible(False)
                continue
            for index, op in enumerate(ops):
                ax.plot(epochs, [s[edge][index] for s in series], label=op, marker=marker, markersize=3)
            ax.set_title(names[edge], fontsize=9)
            ax.tick_params(labelbottom=True)
            ax.grid(alpha=0.3)
        axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))  # shared by every panel
        fig.suptitle(f"α of the {cell} cell by epoch" + (f" — {context}" if context else ""), fontsize=10,
                     y=1 - 0.12 / height, va="top")
        fig.supxlabel("epoch")
        fig.supylabel("α (softmax)", x=0.01)
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncols=min(len(ops), 5), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 1 - 0.45 / height))
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(cell))
        paths.append(save_figure(fig, Path(out_dir) / f"alphas_{safe}.png"))
    return paths
