"""A budget that leaves a strategy random search is warned about, in a single run and across a sweep."""

from __future__ import annotations

import pytest

from conftest import run_cli
from nasrun.run.budget_check import sweep_warnings

TABLE = ["search_space=nb201", "estimator=nb201", "progress=false", "report=false"]


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


def test_a_run_within_its_strategys_random_start_is_warned_about(tmp_path):
    result = run_cli(["strategy=evolution", "budget.trials=8", *TABLE], tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in warnings_of(result.stderr) if "strategy evolution" in line]
    assert "first 20 trials (strategy.population_size)" in line and "this run is random search" in line
    assert "raise budget.trials above 20 or lower strategy.population_size" in line
    beyond = run_cli(["strategy=evolution", "budget.trials=21", "strategy.population_size=20", *TABLE], tmp_path)
    assert beyond.returncode == 0 and not warnings_of(beyond.stderr), beyond.stderr
    random = run_cli(["strategy=random", "budget.trials=8", *TABLE], tmp_path)
    assert random.returncode == 0 and not warnings_of(random.stderr), random.stderr


def test_a_sweep_names_the_strategies_that_cannot_differ(tmp_path):
    result = run_cli(["-m", "strategy=random,evolution,tpe", "seed=0", "budget.trials=12", *TABLE], tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("nasrun: warning: sweep")]
    assert "strategies random, evolution cannot differ" in line and "tpe" not in line  # tpe models after 10
    assert "raise budget.trials above 20" in line


def test_sweep_warnings_per_combination_of_the_other_settings():
    lines = sweep_warnings(["strategy=random,regularized_evolution", "budget.trials=5,40", "seed=0,1", *TABLE])
    (line,) = lines                                                 # 40 trials: regularized evolution breeds
    assert line.startswith("sweep [budget.trials=5")
    assert "random, regularized_evolution cannot differ" in line and "its first 30 (strategy.population_size)" in line
    assert sweep_warnings(["strategy=random,evolution", "budget.trials=50", *TABLE]) == []
    assert sweep_warnings(["seed=0,1,2", "strategy=evolution", "budget.trials=5"]) == []   # one strategy


@pytest.mark.parametrize("overrides", [["strategy=random,evolution", "budget.trials=-3"],   # the job fails itself
                                       ["strategy=random,evolution", "search_space=glob(*)"],
                                       ["strategy=random,nonexistent"]])
def test_a_sweep_that_cannot_be_composed_here_is_left_to_hydra(overrides):
    assert sweep_warnings(overrides) == []
