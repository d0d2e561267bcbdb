"""plan(cfg) -> Experiment: a config checked and built once, before any data is loaded; Runner(experiment,
run_dir) runs it."""

from __future__ import annotations

import pytest

from nasrun.datasets.digits import Digits
from nasrun.errors import ConfigError
from nasrun.experiment import plan
from nasrun.rundir import RunDir
from nasrun.run.runner import Runner

TABULAR = ["search_space=nb201", "estimator=nb201", "budget.trials=3", "tracker=none", "seed=0"]


def test_a_planned_table_search_loads_no_data_and_runs_in_a_run_dir(compose_cfg, tmp_path):
    experiment = plan(compose_cfg(TABULAR))
    assert experiment.data is None and experiment.cost is None and experiment.seed == 0
    assert (experiment.budget.trials, experiment.run_info["tabular"], experiment.run_info["strategy"]) == (3, True, "random")
    planned = dict(experiment.run_info)
    summary = Runner(experiment, tmp_path, show_progress=False, tensorboard=False).run()
    assert summary["trials"] == 3 and summary["objectives"] and RunDir(tmp_path).summary.is_file()
    assert experiment.run_info == planned  # the run adds to a copy: the experiment stays as planned


@pytest.mark.parametrize("overrides, message", [
    (["strategy=hyperband", "strategy.max_epochs=9", "estimator.epochs=2"], "max_epochs"),
    (["objectives=[{metric:nonsense,direction:max}]"], "nonsense"),
    (["limits.max_params=-1"], "max_params"),
])
def test_a_bad_config_is_refused_before_the_data_is_loaded(compose_cfg, monkeypatch, overrides, message):
    monkeypatch.setattr(Digits, "load", lambda self: pytest.fail("the data was loaded before the checks"))
    with pytest.raises(ConfigError, match=message):
        plan(compose_cfg(["tracker=none", *overrides]))
