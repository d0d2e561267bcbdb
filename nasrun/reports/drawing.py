"""Drawings of architectures: the graphs a space describes (`SearchSpace.graphs`), rendered to a PNG by
graphviz (`dot`) when it is installed, else by matplotlib."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from nasrun.reports.figures import new_figure, save_figure
from nasrun.spaces import Graph, space_class


def architecture_graphs(space: str, arch: Any) -> list[Graph] | None:
    """The graphs the space called `space` draws `arch` as; None for a space it does not know or draw."""
    cls = space_class(space)
    return None if cls is None else cls.graphs(arch)


MAX_DRAWN_NODES = 500  # a drawing of more is unreadable, and laying it out takes minutes


def draw_architecture(space: str, arch: Any, path: str | Path, engine: str = "auto") -> Path | None:
    """Draw `arch` to a PNG with graphviz (`dot`) when available, else matplotlib; None for unknown spaces.
    An architecture of more than MAX_DRAWN_NODES nodes is refused (ValueError) before anything is drawn."""
    graphs = architecture_graphs(space, arch)
    if graphs is None:
        return None
    nodes = sum(len(graph.nodes) for graph in graphs)
    if nodes > MAX_DRAWN_NODES:
        raise ValueError(f"{nodes:,} nodes, more than a drawing holds ({MAX_DRAWN_NODES})")
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
