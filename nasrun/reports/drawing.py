"""Drawings of architectures: the graphs a space describes (`SearchSpace.graphs`), rendered to a PNG by
graphviz (`dot`) when it is installed, else by matplotlib."""

from __future__ import annotations

import html
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from nasrun.reports.figures import new_figure, save_figure
from nasrun.state import atomic_write
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
            lines.append(f'"{number}_{key}" [label={dot_label(label)}];')
        for source, target, label, dashed in graph.edges:
            style = ", style=dashed" if dashed else ""
            lines.append(f'"{number}_{source}" -> "{number}_{target}" [label="{dot_text(label)}"{style}];')
        lines.append("}")
    lines.append("}")
    png = subprocess.run(["dot", "-Tpng"], input="\n".join(lines).encode(), check=True, capture_output=True,
                         timeout=60).stdout
    atomic_write(path, png, durable=False)
    return path


def dot_label(text: str) -> str:
    """A node label for DOT: quoted text, or an HTML-like label for mathtext such as $c_{k-2}$."""
    match = re.fullmatch(r"\$(\w+)_\{([^}]*)\}\$", text)
    if match:
        return f"<{html.escape(match[1])}<SUB>{html.escape(match[2])}</SUB>>"
    return f'"{dot_text(text)}"'


def dot_text(text: str) -> str:
    """A label as a DOT quoted string's contents: quotes escaped, line breaks as \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_matplotlib(graphs: list[Graph], path: Path) -> Path:
    """Nodes at their positions (else on a row); edges as arrows, long ones on a row as labelled arcs. Each
    op has its colour, and its label sits where its edge is farthest from every other edge and label."""
    from matplotlib.patches import FancyArrowPatch

    layouts = [arc_layout(graph) for graph in graphs]
    width = max(x for layout in layouts for x, _ in layout[0].values()) + 2
    heights = [max(3.0, y1 - y0 + 1.0) for _, (y0, y1) in layouts]
    fig = new_figure(min(max(6.0, width * 0.9), 30.0), sum(h * 0.75 for h in heights) + 0.5)
    axes = fig.subplots(len(graphs), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, graph, (position, (y0, y1)) in zip(axes, graphs, layouts):
        curves = [edge_curve(graph, position, index) for index in range(len(graph.edges))]
        colours = op_colours(graph)
        placed: list[tuple[float, float]] = []
        for (source, target, label, dashed), curve in zip(graph.edges, curves):
            colour = colours.get(label, "0.35")
            (x1, y1_), (x2, y2), rad = curve
            ax.add_patch(FancyArrowPatch((x1, y1_), (x2, y2), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                         mutation_scale=12, shrinkA=20, shrinkB=20, color=colour,
                                         linestyle="--" if dashed else "-"))
            if label:
                spot = label_spot(curve, [c for c in curves if c is not curve], [*placed, *position.values()])
                placed.append(spot)
                ax.text(*spot, label, ha="center", va="center", fontsize=7, zorder=4,
                        bbox={"boxstyle": "round", "fc": "white", "ec": colour, "lw": 1.2})
        for key, label in graph.nodes:
            ax.text(*position[key], label, ha="center", va="center", fontsize=8, zorder=5,
                    bbox={"boxstyle": "round,pad=0.4", "fc": "lightsteelblue", "ec": "steelblue"})
        ax.set_xlim(-1, width - 1)
        ax.set_ylim(y0 - 0.5, y1 + 0.5)
        ax.set_title(graph.title, fontsize=10)
        ax.axis("off")
    return save_figure(fig, path)


def op_colours(graph: Graph) -> dict[str, str]:
    """One colour per edge label (op), in order of first appearance."""
    labels = list(dict.fromkeys(label for _, _, label, _ in graph.edges if label))
    return {label: f"C{index % 10}" for index, label in enumerate(labels)}


def edge_curve(graph: Graph, position: dict, index: int) -> tuple:
    source, target = graph.edges[index][:2]
    return position[source], position[target], edge_bend(graph, position, source, target, index)


def curve_point(curve: tuple, t: float) -> tuple[float, float]:
    """The point at `t` (0..1) of matplotlib's `arc3` curve: a quadratic Bézier through a control point."""
    (x1, y1), (x2, y2), rad = curve
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    return ((1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t ** 2 * x2,
            (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t ** 2 * y2)


def label_spot(curve: tuple, others: list[tuple], taken: list[tuple[float, float]]) -> tuple[float, float]:
    """Where on `curve` its label is clearest: the candidate point farthest from the other edges (away from
    their ends, which nodes cover) and from the points `taken` (nodes, labels already placed); labels are
    wider than tall."""
    edges = [curve_point(other, t / 20) for other in others for t in range(3, 18)]

    def distance(point, obstacles):
        return min((math.hypot((point[0] - x) / 1.8, point[1] - y) for x, y in obstacles), default=math.inf)

    def clearance(point):  # a label or node box is wider than a line: keep further from those
        return min(distance(point, edges), distance(point, taken) - 0.3)

    candidates = [curve_point(curve, t) for t in (0.5, 0.45, 0.55, 0.4, 0.6, 0.35, 0.65, 0.3, 0.7, 0.75, 0.8)]
    candidates += [(x, y + shift) for x, y in candidates for shift in (0.08, -0.08)]  # the box still on its edge
    return max(candidates, key=lambda point: (round(clearance(point), 1), -candidates.index(point)))


def edge_bend(graph: Graph, position: dict, source: str, target: str, index: int) -> float:
    """Nearly straight edges where nodes have their own positions, bent upwards over a node that would sit on
    the straight line; on a row, straight between neighbours and alternating arcs otherwise. A second edge
    between the same two nodes (a DARTS node may take both inputs from one state) bends further down."""
    span = abs(position[target][0] - position[source][0]) / 1.5
    twins = sum(edge[:2] == (source, target) for edge in graph.edges[:index])  # a second op between two nodes
    if graph.positions:
        bend = -0.25 if any(blocks(position[source], position[target], position[key])
                            for key in position if key not in (source, target)) else 0.08
    else:
        bend = 0.0 if span <= 1 else (-1) ** index * min(0.5, 0.15 + 0.08 * span)
    return bend + 0.35 * twins  # downwards: arcs over blocking nodes go up


def blocks(start: tuple, end: tuple, node: tuple, margin: float = 0.5) -> bool:
    """Whether `node` lies within `margin` of the segment from `start` to `end`, strictly between them."""
    (x1, y1), (x2, y2), (x, y) = start, end, node
    length = (x2 - x1) ** 2 + (y2 - y1) ** 2
    t = ((x - x1) * (x2 - x1) + (y - y1) * (y2 - y1)) / length if length else 0.0
    return 0.0 < t < 1.0 and math.hypot(x - (x1 + t * (x2 - x1)), y - (y1 + t * (y2 - y1))) < margin


def arc_layout(graph: Graph) -> tuple[dict, tuple[float, float]]:
    """Node positions and the vertical extent the edges need."""
    position = {key: graph.positions.get(key, (index * 1.5, 0.0)) for index, (key, _) in enumerate(graph.nodes)}
    ys = [y for _, y in position.values()]
    for index in range(len(graph.edges)):
        ys.append(curve_point(edge_curve(graph, position, index), 0.5)[1])
    return position, (min(ys), max(ys))
