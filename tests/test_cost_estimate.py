"""The expected cost of a run: timed on its own first steps or epoch, printed once with overrides of its
config that shrink it, kept in summary.json, and without any effect on the search."""

from __future__ import annotations

import json
import re

import pytest
from omegaconf import OmegaConf

from conftest import TINY, read_jsonl, run_cli, run_dirs
from nasrun.rundir import RunDir
from nasrun.executors import TrialJob
from nasrun.records import Trial
from nasrun.run.cost import CostEstimate, Estimate, duration, shrink_hints


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_steps(report, clock: FakeClock, seconds: list[float], per_epoch: int, epochs: int, first: int = 1):
    """Report steps first, first + 1, ... after each of `seconds`."""
    for done, step_seconds in enumerate(seconds, start=first):
        clock.now += step_seconds
        report(done, per_epoch, epochs)


def stepped(estimate: CostEstimate, clock: FakeClock, seconds: list[float], per_epoch: int, epochs: int):
    """A phase whose first step (after `seconds[0]`, set-up included) is followed by the others."""
    run_steps(estimate.steps("supernet search"), clock, seconds, per_epoch, epochs)


def test_the_first_step_pays_the_set_up_and_is_not_extrapolated(capsys):
    clock = FakeClock()
    estimate = CostEstimate("CPU", ["strategy.epochs (now 50)"], trials=1, clock=clock)
    report = estimate.steps("supernet search")
    run_steps(report, clock, [30, 2, 2, 2, 2], per_epoch=100, epochs=50)
    assert estimate.estimate is None and capsys.readouterr().err == ""   # 4 steps timed: not enough yet
    run_steps(report, clock, [2], per_epoch=100, epochs=50, first=6)
    assert estimate.estimate.seconds_per_unit == pytest.approx(2.0)        # 5 steps after the first
    assert estimate.estimate.expected_seconds == pytest.approx(2.0 * 100 * 50)
    assert capsys.readouterr().err.strip() == (
        "expected: ~2.8 h for the supernet search on this CPU (2 s/step x 100 steps/epoch x 50 epochs); "
        "to shrink: strategy.epochs (now 50)")
    run_steps(estimate.steps("supernet training"), clock, [90, 1], per_epoch=2, epochs=1)
    assert estimate.estimate.phase == "supernet search" and capsys.readouterr().err == ""  # printed once


def test_a_slow_first_step_or_a_long_wait_is_enough():
    clock = FakeClock()
    slow = CostEstimate("GPU", [], trials=1, clock=clock)
    stepped(slow, clock, [212], per_epoch=1250, epochs=50)
    assert slow.record()["expected_seconds"] == pytest.approx(212 * 1250 * 50)
    assert slow.estimate.line("CPU", []).startswith("expected: ~153 days for the supernet search on this CPU (212 s/step")
    waited = CostEstimate("CPU", [], trials=1, clock=clock)
    stepped(waited, clock, [5, 11], per_epoch=10, epochs=2)                  # 11 s after the first step
    assert waited.estimate.seconds_per_unit == 11
    short = CostEstimate("CPU", [], trials=1, clock=clock)
    stepped(short, clock, [5, 1, 1], per_epoch=3, epochs=1)                 # the training ends first
    assert short.record()["seconds_per_unit"] == 1 and short.record()["actual_seconds"] == 7


def test_a_multi_trial_search_is_timed_on_its_first_epoch_or_its_first_trial():
    clock = FakeClock()
    epochs = CostEstimate("CPU", [], trials=50, epochs_per_trial=10, upper_bound=True, clock=clock)
    heard = []
    report = epochs.epoch_report(0, lambda *args: heard.append(args))
    epochs.on_submit(TrialJob(0, [0], 1))
    clock.now += 36
    report(1, 10, {})
    assert heard == [(1, 10, {})]                                             # the progress bar still hears it
    assert epochs.estimate.basis() == "36 s/epoch x up to 10 epochs x 50 trials"  # a long first epoch: as it is
    assert epochs.estimate.line("CPU", []).startswith("expected: at most ~5 h for the 50 trials")
    clock.now += 100
    epochs.on_close()
    assert epochs.record()["actual_seconds"] == 136
    parallel = CostEstimate("CPU", [], trials=40, workers=4, epochs_per_trial=10, clock=clock)
    assert parallel.epoch_report(0, None) is None                             # workers report no epochs
    parallel.on_record(Trial(0, [0], {"val_accuracy": 0.5}, seconds=30.0), None, None, True)
    assert parallel.estimate.basis() == "30 s/trial x 40 trials / 4 workers"
    assert parallel.estimate.expected_seconds == 300


def test_a_short_first_epoch_pays_the_set_up_once_and_the_second_is_timed():
    """The default run's first epoch (1.2 s) was mostly the process's one-time set-up; its next ones took
    0.1 s: timing the first alone predicted 50 s for a run of 6."""
    clock = FakeClock()
    estimate = CostEstimate("CPU", [], trials=8, epochs_per_trial=5, clock=clock)
    heard = []
    report = estimate.epoch_report(0, lambda *args: heard.append(args))
    estimate.on_submit(TrialJob(0, [0], 1))
    clock.now += 1.25
    report(1, 5, {})
    assert estimate.estimate is None and heard == [(1, 5, {})]              # waits for the second epoch
    clock.now += 0.1
    report(2, 5, {})
    assert estimate.estimate.basis() == "1.15 s set-up + 0.1 s/epoch x 5 epochs x 8 trials"
    assert estimate.estimate.expected_seconds == pytest.approx(1.15 + 4)
    assert estimate.record()["setup_seconds"] == 1.15
    one_epoch = CostEstimate("CPU", [], trials=8, epochs_per_trial=1, clock=clock)
    report = one_epoch.epoch_report(0, lambda *args: None)
    one_epoch.on_submit(TrialJob(0, [0], 1))
    clock.now += 2
    report(1, 1, {})                                                        # no second epoch to wait for
    assert one_epoch.estimate.basis() == "2 s/epoch x 1 epoch x 8 trials"


def test_durations_read_naturally():
    assert [duration(s) for s in (0.25, 42, 150, 7200, 3.1 * 86400, 400 * 86400)] == \
        ["0.25 s", "42 s", "2.5 min", "2 h", "3.1 days", "400 days"]
    assert Estimate("x", "step", 0.5, {"steps_per_epoch": 1, "epochs": 1}).basis() == "0.5 s/step x 1 step/epoch x 1 epoch"


@pytest.mark.parametrize("overrides, hints", [
    (["strategy=darts", "dataset=cifar10"], ["strategy.epochs (now 50)", "strategy.steps_per_epoch (now all)",
                                             "dataset.train_subset (now all)", "scale=tiny"]),
    (["estimator=weight_sharing"], ["estimator.epochs (now 30)", "dataset.train_subset (now all)", "scale=tiny"]),
    (["estimator=early_stopping", "budget.trials=100"], ["budget.trials (now 100)", "estimator.max_epochs (now 30)",
                                                         "dataset.train_subset (now all)", "scale=tiny"]),
    (["estimator=zero_cost"], ["budget.trials (now 8)", "dataset.train_subset (now all)", "scale=tiny"]),
])
def test_the_shrinking_overrides_are_keys_of_that_config(compose_cfg, overrides, hints):
    cfg = compose_cfg(overrides)
    one_shot, supernet = "strategy=darts" in overrides, "estimator=weight_sharing" in overrides
    assert shrink_hints(cfg, one_shot, supernet, scale="full") == hints
    assert "scale=tiny" not in shrink_hints(cfg, one_shot, supernet, scale="tiny")


@pytest.mark.slow
def test_a_tiny_run_prints_its_cost_and_the_same_seed_finds_the_same_trials_without_it(tmp_path):
    estimated = run_cli([*TINY, "budget.trials=3", "hydra.run.dir=estimated"], tmp_path)
    plain = run_cli([*TINY, "budget.trials=3", "estimate=false", "hydra.run.dir=plain"], tmp_path)
    assert estimated.returncode == 0 and plain.returncode == 0, estimated.stderr + plain.stderr
    (line,) = [line for line in estimated.stderr.splitlines() if line.startswith("expected: ")]
    assert re.search(r"for the 3 trials on this CPU \(\S+ s/epoch x 1 epoch x 3 trials\)", line), line
    assert line.endswith("to shrink: budget.trials (now 3), estimator.epochs (now 1), dataset.train_subset (now 256)")
    assert line in RunDir(tmp_path / "estimated").log.read_text()
    config = OmegaConf.load(RunDir(tmp_path / "estimated").config)
    assert (config.budget.trials, config.estimator.epochs) == (3, 1)
    cost = json.loads(RunDir(tmp_path / "estimated").summary.read_text())["cost"]
    assert cost["unit"] == "epoch" and cost["factors"] == {"epochs": 1, "trials": 3}
    assert cost["expected_seconds"] > 0 and cost["actual_seconds"] > 0
    assert "expected: " not in plain.stderr
    assert "cost" not in json.loads(RunDir(tmp_path / "plain").summary.read_text())

    def trials(run):
        return [{**t, "seconds": None, "worker": None} for t in read_jsonl(RunDir(tmp_path / run).trials)]

    assert trials("estimated") == trials("plain")


def test_a_table_lookup_has_no_cost_to_estimate(tmp_path):
    result = run_cli(["search_space=nb201", "estimator=nb201", "budget.trials=3", "progress=false", "report=false"],
                     tmp_path)
    assert result.returncode == 0, result.stderr
    assert "expected: " not in result.stderr
    (run,) = run_dirs(tmp_path)
    assert "cost" not in json.loads(RunDir(run).summary.read_text())


def test_estimate_must_be_a_boolean(tmp_path):
    result = run_cli([*TINY, "estimate=sometimes"], tmp_path)
    assert result.returncode == 2 and "estimate must be true or false" in result.stderr
