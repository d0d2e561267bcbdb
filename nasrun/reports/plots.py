"""Plots of runs, shared by the run report (`nasrun-report`) and `nasrun-compare`.

The run report (written at the end of every run into `<run dir>/plots/`, redrawn by `nasrun-report RUN_DIR`):
  best_so_far_trials.png   each trial's score and the best so far, by trial
  best_so_far_time.png     the same against wall-clock time since the run started
  alphas_<cell>.png        α (softmax weights) per edge and op across epochs, when alphas.jsonl exists
  best_architecture.png    the best architecture: macro layers as a chain with skips, a cell as a DAG
                           (graphviz when the `dot` binary exists, else matplotlib)
Matplotlib is used through its object API (no pyplot), so no display or backend is needed.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasrun.errors import NasrunError
from nasrun.assessment.objectives import Objectives
from nasrun.records import Trial
from nasrun.rundir import RunDir

log = logging.getLogger("nasrun")


# --- shared helpers --------------------------------------------------------------------------------------
def new_figure(width: float = 6.4, height: float = 4.0, layout: str | None = "constrained"):
    """A matplotlib Figure (not pyplot: no global state). Constrained layout costs seconds on a grid of
    many panels: pass layout=None and place them with `subplots_adjust`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NasrunError("plots need matplotlib: pip install matplotlib") from None

    return Figure(figsize=(width, height), layout=layout)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG (or whatever the suffix says), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


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
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash
        by_epoch[record["epoch"]] = record
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


# --- architecture drawings --------------------------------------------------------------------------------
@dataclass
class Graph:
    """A small labelled DAG: nodes in drawing order, edges (source, target, label, dashed), and optional
    (x, y) positions for matplotlib (nodes without one are laid out on a row)."""

    title: str
    nodes: list[tuple[str, str]] = field(default_factory=list)
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)


def macro_graph(arch: dict) -> list[Graph]:
    graph = Graph("macro network: layers (solid) and skip connections (dashed)")
    graph.nodes = [("in", "input"), ("n0", f"stem {arch['stem']}")]
    for index, layer in enumerate(arch["layers"], start=1):
        down = " ↓2" if int(layer.get("stride", 1)) == 2 else ""
        graph.nodes.append((f"n{index}", f"{layer['op']}\n{layer['width']}{down}"))
        graph.edges.append((f"n{index - 1}", f"n{index}", "", False))
        graph.edges += [(f"n{skip}", f"n{index}", "", True) for skip in layer.get("skips", [])]
    graph.nodes.append(("out", "pool + linear"))
    graph.edges = [("in", "n0", "", False), *graph.edges, (f"n{len(arch['layers'])}", "out", "", False)]
    return [graph]


def nb201_graph(arch: str) -> list[Graph]:
    from nasrun.nets.nb201 import NB201_EDGES, parse_arch

    graph = Graph("NAS-Bench-201 cell")
    graph.nodes = [(f"{i}", "input" if i == 0 else ("output" if i == 3 else f"node {i}")) for i in range(4)]
    graph.positions = {"0": (0.0, 0.0), "1": (2.0, 1.0), "2": (4.0, -1.0), "3": (6.0, 0.0)}
    for (target, source), op in zip(NB201_EDGES, parse_arch(arch)):
        if op != "none":
            graph.edges.append((f"{source}", f"{target}", op, False))
    return [graph]


def genotype_graphs(genotype: dict) -> list[Graph]:
    """DARTS genotype: {"normal": [[op, input], ...] (two per node), "normal_concat": [...], "reduce": ...}."""
    graphs = []
    for cell in ("normal", "reduce"):
        if cell not in genotype:
            continue
        graph = Graph(f"{cell} cell")
        pairs = genotype[cell]
        steps = math.ceil(len(pairs) / 2)
        graph.nodes = [("c0", "c_{k-2}"), ("c1", "c_{k-1}"), *[(f"s{i}", f"{i}") for i in range(steps)],
                       ("out", "c_{k}")]
        graph.positions = {"c0": (0.0, 1.2), "c1": (0.0, -1.2), "out": (2.0 * (steps + 1), 0.0),
                           **{f"s{i}": (2.0 * (i + 1), 1.0 if i % 2 == 0 else -1.0) for i in range(steps)}}
        names = ["c0", "c1", *[f"s{i}" for i in range(steps)]]
        for index, (op, source) in enumerate(pairs):
            graph.edges.append((names[int(source)], f"s{index // 2}", op, False))
        concat = genotype.get(f"{cell}_concat", range(2, 2 + steps))
        graph.edges += [(names[int(node)], "out", "", True) for node in concat]
        graphs.append(graph)
    return graphs


def architecture_graphs(space: str, arch: Any) -> list[Graph] | None:
    if isinstance(arch, dict) and "normal" in arch:
        return genotype_graphs(arch)
    if space == "macro":
        return macro_graph(arch)
    if space == "nb201":
        return nb201_graph(arch)
    return None


def draw_architecture(space: str, arch: Any, path: str | Path, engine: str = "auto") -> Path | None:
    """Draw `arch` to a PNG with graphviz (`dot`) when available, else matplotlib; None for unknown spaces."""
    graphs = architecture_graphs(space, arch)
    if graphs is None:
        return None
    if engine == "graphviz" or (engine == "auto" and shutil.which("dot")):
        return render_graphviz(graphs, Path(path))
    return render_matplotlib(graphs, Path(path))


def render_graphviz(graphs: list[Graph], path: Path) -> Path:
    lines = ["digraph G {", "rankdir=LR; node [shape=box, style=rounded];"]
    for number, graph in enumerate(graphs):
        lines.append(f'subgraph cluster_{number} {{ label="{dot_text(graph.title)}";')
        for key, label in graph.nodes:
            lines.append(f'"{number}_{key}" [label="{dot_text(label)}"];')
        for source, target, label, dashed in graph.edges:
            style = ", style=dashed" if dashed else ""
            lines.append(f'"{number}_{source}" -> "{number}_{target}" [label="{dot_text(label)}"{style}];')
        lines.append("}")
    lines.append("}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".dot", delete=False) as handle:
        handle.write("\n".join(lines))
    subprocess.run(["dot", "-Tpng", handle.name, "-o", str(path)], check=True, capture_output=True, timeout=60)
    Path(handle.name).unlink()
    return path


def dot_text(text: str) -> str:
    """A label as a DOT quoted string's contents: quotes escaped, line breaks as \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_matplotlib(graphs: list[Graph], path: Path) -> Path:
    """Nodes at their positions (else on a row); edges as arrows, long ones on a row as labelled arcs."""
    from matplotlib.patches import FancyArrowPatch

    layouts = [arc_layout(graph) for graph in graphs]
    width = max(x for layout in layouts for x, _ in layout[0].values()) + 2
    heights = [max(3.0, y1 - y0 + 1.0) for _, (y0, y1) in layouts]
    fig = new_figure(min(max(6.0, width * 0.9), 30.0), sum(h * 0.75 for h in heights) + 0.5)
    axes = fig.subplots(len(graphs), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, graph, (position, (y0, y1)) in zip(axes, graphs, layouts):
        for index, (source, target, label, dashed) in enumerate(graph.edges):
            (x1, y1_), (x2, y2), rad = *[position[source], position[target]], edge_bend(graph, position, source, target, index)
            ax.add_patch(FancyArrowPatch((x1, y1_), (x2, y2), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                         mutation_scale=12, shrinkA=20, shrinkB=20, color="0.35",
                                         linestyle="--" if dashed else "-"))
            if label:
                mx, my = arc_point(x1, y1_, x2, y2, rad)
                ax.text(mx, my, label, ha="center", va="center", fontsize=7,
                        bbox={"boxstyle": "round", "fc": "lightyellow", "ec": "0.7"})
        for key, label in graph.nodes:
            ax.text(*position[key], label, ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.4", "fc": "lightsteelblue", "ec": "steelblue"})
        ax.set_xlim(-1, width - 1)
        ax.set_ylim(y0 - 0.5, y1 + 0.5)
        ax.set_title(graph.title, fontsize=10)
        ax.axis("off")
    return save_figure(fig, path)


def edge_bend(graph: Graph, position: dict, source: str, target: str, index: int) -> float:
    """Straight edges where nodes have their own positions or are neighbours; otherwise alternating arcs."""
    span = abs(position[target][0] - position[source][0]) / 1.5
    if graph.positions:  # edges between nodes at one height bend upwards, clear of the nodes between them
        return -0.25 if position[target][1] == position[source][1] and span > 1.5 else 0.08
    return 0.0 if span <= 1 else (-1) ** index * min(0.5, 0.15 + 0.08 * span)


def arc_point(x1: float, y1: float, x2: float, y2: float, rad: float) -> tuple[float, float]:
    """The midpoint of matplotlib's `arc3` curve (a quadratic Bézier) between two points."""
    return (x1 + x2) / 2 + 0.5 * rad * (y2 - y1), (y1 + y2) / 2 - 0.5 * rad * (x2 - x1)


def arc_layout(graph: Graph) -> tuple[dict, tuple[float, float]]:
    """Node positions and the vertical extent the edges need."""
    position = {key: graph.positions.get(key, (index * 1.5, 0.0)) for index, (key, _) in enumerate(graph.nodes)}
    ys = [y for _, y in position.values()]
    for index, (source, target, _, _) in enumerate(graph.edges):
        (x1, y1), (x2, y2) = position[source], position[target]
        ys.append(arc_point(x1, y1, x2, y2, edge_bend(graph, position, source, target, index))[1])
    return position, (min(ys), max(ys))


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


def write_run_report(run_dir: str | Path) -> list[Path]:
    """Draw every plot the run's files allow; a plot that fails is a warning, never an error."""
    run = RunDir(run_dir)
    out = run.plots
    trials = run.read_trials()
    jobs = []
    if trials:
        jobs.append(("best so far by trial", lambda: [plot_best_so_far(trials, out / "best_so_far_trials.png")]))
        jobs.append(("best so far by time", lambda: [plot_best_so_far(trials, out / "best_so_far_time.png",
                                                                      wall_times(run.path, trials))]))
    if trials and run.pareto.exists():
        record = json.loads(run.pareto.read_text())
        objectives = Objectives(record["objectives"], record["constraints"] or None)
        jobs.append(("Pareto front", lambda: [plot_pareto(trials, objectives, run.pareto_plot)]))
    if run.alphas.exists():
        jobs.append(("α trajectories", lambda: plot_alphas(read_alphas(run.alphas), out)))
    if run.best.exists():
        spec = json.loads(run.best.read_text())
        jobs.append(("best architecture", lambda: [draw_architecture(spec.get("space"), spec.get("arch"),
                                                                     out / "best_architecture.png")]))
    written = []
    for name, job in jobs:
        try:
            written += [p for p in job() if p is not None]
        except Exception as err:  # noqa: BLE001 - a report must never fail the run it describes
            log.warning("report: could not draw %s: %s: %s", name, type(err).__name__, err)
    return written
