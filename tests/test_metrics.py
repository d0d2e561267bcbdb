"""Cost metrics against hand counts; latency cache; search-space design warnings."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from nasrun.rundir import RunDir
from nasrun.errors import ConfigError
from nasrun.assessment.metrics import (ArchitectureMetrics, MetricsConfig, count_flops, measure_latency_ms,
                            measure_memory_mb)
from nasrun.assessment.space_check import design_warnings
from nasrun.training import count_parameters
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space


def test_single_conv_params_and_flops_match_hand_count():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)          # 8 output maps of 8x8, 3*3*3 MACs per output
    assert count_parameters(conv) == 8 * 3 * 3 * 3 + 8
    assert count_flops(conv, torch.randn(1, 3, 8, 8)) == 2 * (8 * 8 * 8) * (3 * 3 * 3)


def test_linear_and_small_mlp_flops_match_hand_count():
    assert count_flops(nn.Linear(10, 5), torch.randn(1, 10)) == 2 * 10 * 5
    mlp = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    assert count_parameters(mlp) == (10 * 20 + 20) + (20 * 3 + 3)
    assert count_flops(mlp, torch.randn(4, 10)) == 4 * 2 * (10 * 20 + 20 * 3)


def test_cpu_memory_counts_weights_input_and_live_activations():
    linear = nn.Linear(10, 5)
    # weights 55 floats + input 10 floats + output 5 floats, 4 bytes each
    assert measure_memory_mb(linear, torch.randn(1, 10)) * 2**20 == pytest.approx((55 + 10 + 5) * 4)
    mlp = nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 5))
    static = (1100 + 505 + 10) * 4
    # peak: the hidden layer's output and the ReLU's output (not in place) alive together
    assert measure_memory_mb(mlp, torch.randn(1, 10)) * 2**20 == pytest.approx(static + 2 * 100 * 4)


def test_latency_is_a_positive_median_and_bigger_nets_are_slower():
    small = nn.Conv2d(3, 4, 3, padding=1)
    big = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 64, 64, 3, padding=1) for i in range(4)])
    x = torch.randn(1, 3, 32, 32)
    small_ms = measure_latency_ms(small, x, warmup=1, min_seconds=0.05)
    big_ms = measure_latency_ms(big, x, warmup=1, min_seconds=0.05)
    assert 0 < small_ms < big_ms


def test_architecture_metrics_are_cached_per_architecture():
    space = MacroSpace(min_layers=2, max_layers=3)
    arch = space.sample(random.Random(0))
    measure = ArchitectureMetrics(space, (1, 8, 8), 10, config=MetricsConfig(latency_min_seconds=0.02),
                                  measures={"params", "flops", "latency", "memory"})
    first = measure.measure(arch)
    assert set(first) == {"params", "flops", "macs", "latency_ms", "latency_ms_batch", "memory_mb"}
    assert first["flops"] == 2 * first["macs"] > 0
    assert first["params"] == count_parameters(space.build(arch, (1, 8, 8), 10))
    assert measure.measure(arch)["latency_ms"] == first["latency_ms"]       # from the cache
    assert list(measure.latency_cache) == [space.key(arch)]


def test_metrics_config_rejects_unknown_measures():
    with pytest.raises(ConfigError, match="unknown"):
        MetricsConfig(enabled=["params", "energy"])
    with pytest.raises(ConfigError, match="latency_table"):
        MetricsConfig(latency="table")


def test_default_spaces_pass_the_design_check():
    assert design_warnings(MacroSpace(), budget=50) == []
    assert design_warnings(NB201Space(), budget=100) == []


def test_design_check_warns_on_poor_spaces():
    few_ops = design_warnings(MacroSpace(2, 3, ops=["conv3x3", "conv5x5"], widths=[64, 32], skip_window=1), 10)
    text = " | ".join(few_ops)
    assert "only 2 operation(s)" in text
    assert "no identity/skip" in text
    assert "shrink" in text
    tiny = design_warnings(MacroSpace(1, 1, ops=["conv3x3", "identity", "maxpool3x3"], widths=[16]), 20)
    assert any("covers 100% of the space" in w for w in tiny)
    huge = design_warnings(MacroSpace(20, 20), 10)
    assert any("covers 1e-" in w for w in huge)


# --- latency lookup tables ---------------------------------------------------------------------------
from nasrun.assessment.latency_table import LatencyTable  # noqa: E402
from nasrun.spaces.macro import macro_keys  # noqa: E402

TABLE_SPACE = dict(min_layers=1, max_layers=3, ops=["conv3x3", "conv7x7", "identity"], widths=[8, 64],
                   stem_width=8, reduce_at=[0.5])


@pytest.fixture(scope="module")
def small_table():
    # several timed blocks per entry: their median shrugs off a preemption on a busy machine (one block did not)
    return LatencyTable.measure(MacroSpace(**TABLE_SPACE), (3, 16, 16), 10, warmup=1, min_seconds=0.005)


def test_latency_table_covers_every_part_and_ranks_tiny_below_huge(small_table, tmp_path):
    space = MacroSpace(**TABLE_SPACE)
    tiny = space.validate({"stem": 8, "layers": [{"op": "identity", "width": 8, "skips": []}]})
    huge = space.validate({"stem": 8, "layers": [{"op": "conv7x7", "width": 64, "skips": []},
                                                  {"op": "conv7x7", "width": 64, "skips": []},
                                                  {"op": "conv7x7", "width": 64, "skips": [1]}]})
    small_table.save(tmp_path / "table.json")
    predict = LatencyTable.load(tmp_path / "table.json").predictor(space, (3, 16, 16))
    for arch in (tiny, huge, *(space.sample(random.Random(seed)) for seed in range(5))):
        predict(arch)                                       # every reachable part is in the table
    x = torch.randn(1, 3, 16, 16)
    measured = {name: measure_latency_ms(space.build(a, (3, 16, 16), 10), x, 1, 0.05)
                for name, a in (("tiny", tiny), ("huge", huge))}
    assert predict(tiny) < predict(huge) and measured["tiny"] < measured["huge"]
    assert measured["huge"] / 10 < predict(huge) < measured["huge"] * 10     # a loose agreement
    assert len(macro_keys(huge, (3, 16, 16))) == 1 + 3 + 1 + 1              # stem, 3 ops, one skip, head


def test_latency_table_refuses_other_inputs_and_spaces(small_table):
    with pytest.raises(ConfigError, match="rebuild"):
        small_table.predictor(MacroSpace(**TABLE_SPACE), (3, 32, 32))
    with pytest.raises(ConfigError, match="independent"):
        LatencyTable.measure(NB201Space(), (3, 32, 32), 10)
    with pytest.raises(ConfigError, match="not a nasrun-latency-table"):
        LatencyTable.load("/nonexistent/table.json")


@pytest.mark.slow
def test_latency_table_cli_feeds_the_search(tmp_path):
    from conftest import TINY, read_jsonl, run_cli, run_dirs

    space = ["search_space.ops=[conv3x3,identity,maxpool3x3]", "search_space.widths=[8,16]",
             "search_space.stem_width=8", "search_space.min_layers=2", "search_space.max_layers=3"]
    result = run_cli([*space, "--out", "table.json", "--min-seconds", "0.002", "--warmup", "1"], tmp_path,
                     command="nasrun-latency-table")
    assert result.returncode == 0, result.stderr[-2000:]
    objectives = "objectives=[{metric:val_accuracy,direction:max},{metric:latency_ms,direction:min}]"
    result = run_cli([*TINY, *space, objectives, "metrics.latency=table", "metrics.latency_table=table.json"],
                     tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    predict = LatencyTable.load(tmp_path / "table.json").predictor(MacroSpace(2, 3, ops=["conv3x3", "identity",
                                                                   "maxpool3x3"], widths=[8, 16], stem_width=8), (1, 8, 8))
    for trial in read_jsonl(RunDir(run).trials):
        assert trial["metrics"]["latency_ms"] == pytest.approx(predict(trial["arch"]), abs=1e-3)
    assert RunDir(run).pareto.is_file()
