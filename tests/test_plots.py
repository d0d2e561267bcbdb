"""What the plots say: trial ids on integer ticks, legends beside the points, titles naming the run,
fidelities and constraint violators told apart, constraints drawn, edges named, labels off other edges."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import nasrun.reports.alphas as alphas
import nasrun.reports.plots as plots
from nasrun.assessment.objectives import Objectives
from nasrun.nets.nb201 import format_arch
from nasrun.records import Trial
from nasrun.reports.drawing import arc_layout, curve_point, edge_curve, label_spot
from nasrun.spaces.darts import DartsSpace
from nasrun.spaces.darts_genotypes import PUBLISHED, published_genotype
from nasrun.spaces.nb201 import NB201Space

CONTEXT = "random · nb201 · nb201 · cifar10 · seed 3"


@pytest.fixture
def figures(monkeypatch) -> list:
    """The figures the plot functions draw, kept instead of saved."""
    kept = []

    def keep(fig, path):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig).draw()  # lay out, so positions and extents are final
        kept.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(alphas, "save_figure", keep)
    return kept


def legend_beside_axes(ax) -> bool:
    renderer = ax.figure.canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def test_best_so_far_counts_trial_ids_and_tells_fidelities_failures_and_violators_apart(figures, tmp_path):
    trials = [Trial(0, "a", {"fitness": 0.5}, fidelity=1), Trial(1, "b", {"fitness": 0.6}, fidelity=1),
              Trial(2, "c", {"fitness": 0.55}, fidelity=3), Trial(3, "d", {}, status="failed", fidelity=3),
              Trial(4, "e", {"fitness": -math.inf, "feasible": 0}, fidelity=3)]
    plots.plot_best_so_far(trials, tmp_path / "p.png", context=CONTEXT)
    [ax] = figures[0].axes
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert {"1 epoch (2)", "3 epochs (1)", "failed (1)", "violates constraints (1)"} <= set(legend)
    assert not any("failed" in label and "violates" in label for label in legend)
    points = {tuple(offset) for collection in ax.collections for offset in collection.get_offsets()}
    assert (0.0, 0.5) in points and (2.0, 0.55) in points  # x = the trial's id, not its 1-based position
    assert all(float(tick).is_integer() for tick in ax.get_xticks())
    assert CONTEXT in ax.get_title() and legend_beside_axes(ax)


def test_the_pareto_front_draws_its_constraint_and_says_which_way_is_better(figures, tmp_path):
    objectives = Objectives([{"metric": "val_accuracy", "direction": "max"}, {"metric": "latency_ms", "direction": "min"}],
                            {"latency_ms": {"max": 5}})
    trials = [Trial(i, str(i), {"val_accuracy": acc, "latency_ms": lat}) for i, (acc, lat) in
              enumerate([(0.5, 2.0), (0.7, 4.0), (0.9, 8.0), (0.6, 6.0)])]
    for trial in trials:
        objectives.assess(trial)
    plots.plot_pareto(trials, objectives, tmp_path / "p.png", context=CONTEXT)
    [ax] = figures[0].axes
    bounds = [line for line in ax.get_lines() if line.get_label() == "constraint latency_ms ≤ 5"]
    assert len(bounds) == 1 and list(bounds[0].get_ydata()) == [5, 5]
    assert ax.get_ylabel() == "latency_ms (lower is better)" and "(min)" not in ax.get_ylabel()
    assert "violates constraints (2)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert CONTEXT in ax.get_title() and legend_beside_axes(ax)


def test_anytime_curves_name_the_sweep_and_keep_the_legend_off_the_curves(figures, tmp_path):
    plots.plot_anytime({"random": [[0.1, 0.2, 0.3]], "evolution": [[0.2, 0.2, 0.4]]}, tmp_path / "a.png",
                       context="sweep 12-00 · search_space=nb201")
    [ax] = figures[0].axes
    assert "sweep 12-00 · search_space=nb201" in ax.get_title() and legend_beside_axes(ax)
    assert all(float(tick).is_integer() for tick in ax.get_xticks())


def test_alpha_panels_are_named_by_the_nodes_each_edge_joins(figures, tmp_path):
    darts = [[[1 / 3] * 3] * 14]
    records = [{"epoch": e, "ops": ["none", "skip_connect", "sep_conv_3x3"], "alphas": {"normal": darts[0]}}
               for e in (1, 2)]
    alphas.plot_alphas(records, tmp_path, space="darts", context=CONTEXT)
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_visible()]
    assert titles == DartsSpace.edge_names(14)
    assert titles[0] == "node 0 ← $c_{k-2}$" and titles[4] == "node 1 ← node 0"
    assert NB201Space.edge_names(6)[2] == "node 2 ← node 1" and NB201Space.edge_names(6)[3] == "output ← input"
    assert alphas.edge_names("macro", 3) == ["edge 0", "edge 1", "edge 2"]  # a space without cells


@pytest.mark.parametrize("graph", [NB201Space.graphs(format_arch(["nor_conv_3x3", "skip_connect", "avg_pool_3x3",
                                                                  "nor_conv_1x1", "nor_conv_1x1", "skip_connect"]))[0],
                                   *[graph for name in PUBLISHED for graph in DartsSpace.graphs(published_genotype(name))]],
                         ids=lambda graph: graph.title)
def test_op_labels_sit_clear_of_the_other_edges(graph):
    """No op label sits on a crossing: no other edge runs through the middle of the label (which is about
    1 unit wide and 0.2 high where nodes are 2 units apart)."""
    position, _ = arc_layout(graph)
    curves = [edge_curve(graph, position, index) for index in range(len(graph.edges))]
    taken = list(position.values())
    for index, curve in enumerate(curves):
        if not graph.edges[index][2]:
            continue
        others = [c for c in curves if c is not curve]
        x, y = label_spot(curve, others, taken)
        taken.append((x, y))
        crossing = [curve_point(other, t / 40) for other in others for t in range(4, 37)]
        assert not any(abs(px - x) < 0.3 and abs(py - y) < 0.08 for px, py in crossing), (graph.title, graph.edges[index])
