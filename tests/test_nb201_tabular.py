"""The packaged NAS-Bench-201 table, the tabular estimator, and `nasrun search_space=nb201 estimator=nb201`
end to end with every multi-trial strategy."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from nasrun.rundir import RunDir
from nasrun.errors import ConfigError, InvalidArchitecture
from nasrun.estimators.base import Evaluation
from nasrun.estimators.nb201 import NB201Tabular, load_table
from nasrun.nets import load_network
from nasrun.spaces.nb201 import NB201Space
from nasrun.spaces.macro import MacroSpace

from conftest import read_jsonl, run_cli, run_dirs

RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
STRATEGIES = ["random", "evolution", "regularized_evolution", "reinforce", "local_search", "local_search_first", "tpe"]


def bound(dataset: str = "cifar10") -> NB201Tabular:
    estimator = NB201Tabular(dataset)
    estimator.bind(NB201Space(), None, None)
    return estimator


def test_table_agrees_with_the_shared_readme():
    table = load_table()
    assert len(table.archs) == 15_625 and len(set(table.archs)) == 15_625
    assert table.best("cifar10_test_200ep") == (6111, 94.3733)
    assert table.best("cifar100_test_200ep")[1] == 73.5133
    assert table.best("imagenet16_test_200ep")[1] == 47.3111
    assert table.best("cifar10_valid_200ep") == (6111, 91.6067)
    assert table.columns["cifar10_test_200ep"][table.row(RESNET_CELL)] == 93.91
    space = NB201Space()
    assert {space.key(arch) for arch in table.archs} == set(table.archs)   # every row is a canonical arch


def test_table_and_provenance_ship_inside_the_package():
    data = resources.files("nasrun").joinpath("data")
    assert data.joinpath("nb201_accuracy.csv.gz").is_file()
    assert "NAS-Bench-201" in data.joinpath("NB201_PROVENANCE.md").read_text()


def test_search_sees_the_12_epoch_validation_column_only():
    table, estimator = load_table(), bound("cifar100")
    row = table.row(RESNET_CELL)
    evaluation = estimator.evaluate(RESNET_CELL, seed=0)
    assert evaluation.metrics["val_accuracy"] == pytest.approx(table.columns["cifar100_valid_12ep"][row] / 100)
    assert set(evaluation.metrics) == {"val_accuracy", "nb201_index"}
    test = estimator.test(RESNET_CELL, evaluation, seed=0)
    assert test["test_accuracy"] == pytest.approx(table.columns["cifar100_test_200ep"][row] / 100)
    assert test["regret"] == pytest.approx((73.5133 - table.columns["cifar100_test_200ep"][row]) / 100)


def test_regret_of_the_optimum_is_zero():
    estimator = bound("cifar10")
    best = load_table().archs[6111]
    assert estimator.test(best, Evaluation({}), 0)["regret"] == 0.0


@pytest.mark.parametrize("dataset, shape, classes", [("cifar10", [3, 32, 32], 10), ("cifar100", [3, 32, 32], 100),
                                                     ("imagenet16", [3, 16, 16], 120)])
def test_network_spec_per_dataset(dataset, shape, classes):
    assert NB201Tabular(dataset).network_spec() == {"input_shape": shape, "num_classes": classes}


@pytest.mark.parametrize("bad, message", [
    ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|", "node groups"),
    ("|conv_5x5~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|", "unknown op"),
    ("|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|", "must read"),
    ("nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|", "start and end"),
    ("|nor_conv_3x3~0|+|none~0|+|skip_connect~0|none~1|skip_connect~2|", "incoming edges"),
    (42, "architecture is a string"),
])
def test_malformed_arch_strings_are_clear_errors(bad, message):
    with pytest.raises(InvalidArchitecture, match=message):
        bound().evaluate(bad, seed=0)


def test_bad_dataset_and_wrong_space_are_config_errors():
    with pytest.raises(ConfigError, match="imagenet16"):
        NB201Tabular("imagenet")
    with pytest.raises(ConfigError, match="search_space=nb201"):
        NB201Tabular().bind(MacroSpace(min_layers=2, max_layers=3), None, None)


@pytest.fixture(scope="module")
def strategy_sweep(tmp_path_factory) -> Path:
    """One multirun: every strategy on NB201 with the tabular estimator, 12 queries each."""
    root = tmp_path_factory.mktemp("nb201_cli")
    result = run_cli(["-m", f"strategy={','.join(STRATEGIES)}", "search_space=nb201", "estimator=nb201",
                      "budget.trials=12", "progress=false"], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.slow
def test_cli_runs_every_strategy_on_nb201(strategy_sweep):
    dirs = run_dirs(strategy_sweep)
    summaries = [json.loads(RunDir(d).summary.read_text()) for d in dirs]
    assert sorted(s["strategy"] for s in summaries) == sorted(STRATEGIES)
    table = load_table()
    for run_dir, summary in zip(dirs, summaries):
        trials = read_jsonl(RunDir(run_dir).trials)
        assert len(trials) == 12 and len({t["arch"] for t in trials}) == 12
        assert all(0 < t["metrics"]["val_accuracy"] < 1 for t in trials)
        best = summary["best_arch"]
        assert summary["test"]["test_accuracy"] == pytest.approx(table.columns["cifar10_test_200ep"][table.row(best)] / 100)
        spec = json.loads(RunDir(run_dir).best.read_text())
        assert spec["network"]["input_shape"] == [3, 32, 32] and spec["network"]["num_classes"] == 10


@pytest.mark.slow
def test_best_architecture_json_rebuilds_the_network(strategy_sweep):
    net = load_network(RunDir(run_dirs(strategy_sweep)[0]).best)
    assert net.head[-1].out_features == 10


@pytest.mark.slow
def test_cli_imagenet16_writes_its_input_shape(tmp_path):
    result = run_cli(["search_space=nb201", "estimator=nb201", "estimator.dataset=imagenet16", "budget.trials=3",
                      "progress=false"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    spec = json.loads(RunDir(run_dirs(tmp_path)[0]).best.read_text())
    assert spec["network"]["input_shape"] == [3, 16, 16] and spec["network"]["num_classes"] == 120
