"""Failure is loud: no result is an error, a corrupt trial log is an error, a diverged search stops, and a
search that ends early says why."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_runner import ToyEstimator, make_runner

from conftest import TINY, run_cli
from nasrun.rundir import RunDir
from nasrun.assessment.assess import Assessment
from nasrun.errors import CheckpointError, NasrunError
from nasrun.supernets.weighted import GumbelWeighting
from nasrun.assessment.objectives import Objectives
from nasrun.records import Trial, TrialLog
from nasrun.strategies.random_search import RandomSearch

TABULAR = ["search_space=nb201", "estimator=nb201", "budget.trials=3", "progress=false"]


def test_a_run_with_no_feasible_trial_exits_1_with_one_line_and_writes_its_run_dir(tmp_path):
    result = run_cli([*TABULAR, "constraints={val_accuracy:{max:0.01}}", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no feasible architecture" in errors[0] and "Traceback" not in result.stderr
    summary = json.loads(RunDir(tmp_path / "run").summary.read_text())
    assert summary["best_trial"] is None and summary["trials"] == 3


def test_a_sweep_runs_every_job_and_exits_1_when_one_has_no_result(tmp_path):
    result = run_cli(["-m", *TABULAR, "constraints={val_accuracy:{max:0.01}}", "seed=0,1",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert result.returncode == 1 and "2 job(s) of the sweep ended without a result" in result.stderr
    assert all(RunDir(tmp_path / "sweep" / job).summary.exists() for job in ("0", "1"))


def test_every_trial_failing_is_reported_as_no_result(tmp_path):
    runner = make_runner(tmp_path, estimator=ToyEstimator(fail_on=(0, 1, 2, 3)), trials=3)
    runner.run()
    assert runner.no_result().startswith("no trial succeeded: all 3 failed") and "out of memory" in runner.no_result()
    assert json.loads(RunDir(tmp_path).summary.read_text())["best_trial"] is None


class ThreeOnly(RandomSearch):
    """Proposes three architectures, then nothing."""

    def ask(self, n):
        n = min(n, 3 - getattr(self, "asked", 0))
        self.asked = getattr(self, "asked", 0) + n
        return super().ask(n)


def test_a_strategy_that_runs_dry_ends_the_run_with_a_logged_reason(tmp_path, caplog):
    runner = make_runner(tmp_path, strategy=ThreeOnly(), trials=10)
    summary = runner.run()
    assert len(runner.trials) == 3 and summary["trials"] == 3
    assert summary["stop_reason"].startswith("stopped after 3 of 10 trials: the strategy proposed no new")
    assert "stopped after 3 of 10 trials" in caplog.text


def test_running_out_of_wall_clock_is_a_logged_reason(tmp_path):
    summary = make_runner(tmp_path, trials=50, seconds=1e-9).run()
    assert summary["trials"] == 0 and "wall-clock budget" in summary["stop_reason"]


def lines_of(trials):
    return [json.dumps(Trial(i, [i, 0, 0], {"val_accuracy": 0.5}).to_dict()) for i in trials]


def test_only_a_torn_last_line_of_the_trial_log_is_ignored(tmp_path):
    path = RunDir(tmp_path).trials
    path.write_text("\n".join(lines_of(range(3))) + "\n" + lines_of([3])[0][:20])
    assert [t.id for t in TrialLog(path).read()] == [0, 1, 2]


@pytest.mark.parametrize("bad", ['{"id": 1, "arch": [1, 0', "not json", "[1, 2]", '{"id": 1}'])
def test_a_corrupt_line_before_the_last_is_an_error_naming_the_line(tmp_path, bad):
    path = RunDir(tmp_path).trials
    good = lines_of(range(3))
    path.write_text("\n".join([good[0], bad, good[2]]) + "\n")
    with pytest.raises(CheckpointError, match=r"line 2 is corrupt"):
        TrialLog(path).read()


def test_a_complete_but_corrupt_last_line_is_an_error_too(tmp_path):
    path = RunDir(tmp_path).trials
    path.write_text("\n".join([*lines_of(range(2)), "garbage"]) + "\n")
    with pytest.raises(CheckpointError, match="line 3"):
        TrialLog(path).read()


class Unmeasurable:
    measures = {"latency"}

    def measure(self, arch):
        raise RuntimeError("timer broke")


def test_a_metric_an_objective_needs_and_cannot_measure_fails_the_trial():
    objectives = Objectives([{"metric": "val_accuracy"}, {"metric": "latency_ms", "direction": "min"}])
    trial = Trial(0, [0, 0, 0], {"val_accuracy": 0.9})
    Assessment(objectives, Unmeasurable()).assess(trial)
    assert not trial.ok and "timer broke" in trial.error and "latency" in trial.error


def test_a_metric_nobody_needs_that_cannot_be_measured_is_only_a_warning(caplog):
    trial = Trial(0, [0, 0, 0], {"val_accuracy": 0.9})
    Assessment(Objectives(), Unmeasurable()).assess(trial)
    assert trial.ok and "timer broke" in caplog.text


def test_gdas_sampling_refuses_non_finite_alpha_instead_of_spinning():
    with pytest.raises(NasrunError, match="not finite"):
        GumbelWeighting(1.0).op_weights(torch.full((2, 5), math.nan))


@pytest.mark.parametrize("strategy", ["darts", "gdas"])
def test_a_diverging_differentiable_search_stops_with_the_epoch(compose_cfg, tmp_path, strategy):
    from nasrun.experiment import run_experiment

    cfg = compose_cfg([f"strategy={strategy}", *TINY, "strategy.lr=1e30"])
    with pytest.raises(NasrunError, match=r"search diverged: .* non-finite in epoch 1"):
        run_experiment(cfg, tmp_path / "run", show_progress=False)
    assert not RunDir(tmp_path / "run").trials.exists() or not RunDir(tmp_path / "run").trials.read_text()
