"""The search loop with toy components: completion order, failures, budgets, the one-shot path."""

import json
import math
import random

import pytest
import torch
from toys import ToySpace

from nasrun.errors import NasrunError
from nasrun.rundir import RunDir, load_checkpoint
from nasrun.estimators import Estimator, Evaluation
from nasrun.executors import Executor, run_trial
from nasrun.executors.local import LocalExecutor
from nasrun.hardware import Hardware
from nasrun.run.runner import Budget, Experiment, Runner, trial_seed
from nasrun.strategies import OneShotStrategy, Strategy
from nasrun.strategies.random_search import RandomSearch


class ToyEstimator(Estimator):
    needs_data = False

    def __init__(self, fail_on=(), nan_on=()):
        self.fail_on, self.nan_on = fail_on, nan_on

    def evaluate(self, arch, seed, report=None):
        if arch[0] in self.fail_on:
            raise RuntimeError("out of memory (pretend)")
        score = float("nan") if arch[0] in self.nan_on else sum(arch) / 9
        return Evaluation({"val_accuracy": score})

    def test(self, arch, evaluation, seed):
        return {"test_accuracy": evaluation.metrics["val_accuracy"]}


class ReversingExecutor(Executor):
    """Two workers that hand results back in reverse submission order."""

    workers = 2

    def start(self, estimator):
        super().start(estimator)
        self.jobs = []

    def submit(self, job, report=None):
        self.jobs.append(job)

    def wait(self):
        done = [run_trial(self.estimator, job, worker="w") for job in reversed(self.jobs)]
        self.jobs = []
        return done


class RecordingStrategy(RandomSearch):
    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.asked, self.told = [], []

    def ask(self, n):
        self.asked.append(n)
        return super().ask(n)

    def tell(self, trials):
        self.told.append([t.id for t in trials])


def make_runner(tmp_path, strategy=None, estimator=None, executor=None, trials=6, seconds=None):
    experiment = Experiment(ToySpace(width=3), strategy or RandomSearch(), estimator or ToyEstimator(),
                            executor or LocalExecutor(), Hardware("cpu"), Budget(trials, seconds), seed=0)
    return Runner(experiment, tmp_path, show_progress=False)


def test_runner_writes_trials_best_and_summary(tmp_path):
    runner = make_runner(tmp_path)
    summary = runner.run()
    lines = [json.loads(line) for line in RunDir(tmp_path).trials.read_text().splitlines()]
    assert [line["id"] for line in lines] == list(range(6))
    assert all(line["status"] == "ok" and line["seed"] == trial_seed(0, line["id"]) for line in lines)
    best = json.loads(RunDir(tmp_path).best.read_text())
    assert best["metrics"]["val_accuracy"] == max(line["metrics"]["val_accuracy"] for line in lines)
    assert best["metrics"]["test_accuracy"] == best["metrics"]["val_accuracy"]
    assert summary["trials"] == 6 and summary["best_trial"] == best["trial"]
    assert json.loads(RunDir(tmp_path).summary.read_text())["test"] == summary["test"]


def test_failures_and_nan_scores_are_recorded_and_the_search_goes_on(tmp_path):
    runner = make_runner(tmp_path, estimator=ToyEstimator(fail_on=(0, 1), nan_on=(2,)), trials=12)
    summary = runner.run()
    failed = [t for t in runner.trials if not t.ok]
    assert failed and len(runner.trials) == 12
    assert all("RuntimeError: out of memory" in t.error or "non-finite" in t.error for t in failed)
    assert summary["failed_trials"] == len(failed)
    assert runner.trials[summary["best_trial"]].ok


def test_runner_asks_for_free_workers_and_accepts_any_completion_order(tmp_path):
    strategy = RecordingStrategy()
    runner = make_runner(tmp_path, strategy=strategy, executor=ReversingExecutor(), trials=5)
    runner.run()
    assert strategy.asked == [2, 2, 1]
    assert strategy.told == [[1, 0], [3, 2], [4]]
    assert sorted(t.id for t in runner.trials) == list(range(5))


class RetrainingEstimator(ToyEstimator):
    """A final test that trains a network of its own (as weight sharing's retraining does)."""

    def test(self, arch, evaluation, seed):
        return Evaluation({"test_accuracy": 0.5}, weights={"w": torch.ones(2)})


def test_the_weights_a_final_test_trained_are_written_by_the_run_directory(tmp_path):
    summary = make_runner(tmp_path, estimator=RetrainingEstimator()).run()
    assert summary["test"] == {"test_accuracy": 0.5}
    assert torch.equal(load_checkpoint(RunDir(tmp_path).retrained_weights)["w"], torch.ones(2))


def test_wall_clock_budget_stops_new_trials(tmp_path):
    runner = make_runner(tmp_path, trials=50, seconds=1e-9)
    runner.run()
    assert runner.trials == []  # the budget is checked before the first proposal
    assert "wall-clock budget" in runner.stop_reason


def test_random_search_never_repeats_until_exhausted(tmp_path):
    strategy = RandomSearch()
    strategy.bind(ToySpace(width=3), seed=0, budget=64)
    keys = [json.dumps(a) for a in strategy.ask(64)]
    assert len(set(keys)) == 64


def test_same_seed_same_proposals_and_state_round_trip():
    first, second = RandomSearch(), RandomSearch()
    first.bind(ToySpace(width=3), 3, 10)
    second.bind(ToySpace(width=3), 3, 10)
    assert first.ask(4) == second.ask(4)
    resumed = RandomSearch()
    resumed.bind(ToySpace(width=3), 3, 10)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.ask(3) == first.ask(3)


class ToyOneShot(OneShotStrategy):
    def search(self, context):
        context.save_state({"epoch": 1})
        assert context.load_state() == {"epoch": 1}
        return [3, 3, 3], 0.25


def test_one_shot_strategy_result_is_scored_like_a_trial(tmp_path):
    runner = make_runner(tmp_path, strategy=ToyOneShot())
    summary = runner.run()
    assert len(runner.trials) == 1 and runner.trials[0].arch == [3, 3, 3]
    assert summary["best_val_accuracy"] == 1.0 and runner.trials[0].metrics["search_seconds"] == 0.25
    assert RunDir(tmp_path).search_state.exists()
    assert summary["trials"] == 1 and "stop_reason" not in summary  # one proposal is the whole budget


@pytest.mark.parametrize("state, message", [({"proposed": [3, 3, 9]}, "9"), ({"search_seconds": "soon"}, "search_seconds"),
                                            ({"search_seconds": -1.0}, "search_seconds")])
def test_a_one_shot_state_that_does_not_fit_is_refused(state, message):
    """runner.json is data: what it says a one-shot strategy proposed must be an architecture of the space."""
    strategy = ToyOneShot()
    strategy.bind(ToySpace(width=3), 0, 1)
    saved = {**strategy.state_dict(), **state}
    with pytest.raises(Exception, match=message):
        strategy.load_state_dict(saved)
    assert strategy.proposed is None and strategy.search_seconds is None



def test_trial_seeds_differ_per_trial_and_run():
    seeds = {trial_seed(run, trial) for run in range(3) for trial in range(100)}
    assert len(seeds) == 300 and trial_seed(0, 0) != 0


def test_base_mutation_of_a_toy_space_changes_one_decision():
    space, rng = ToySpace(width=3), random.Random(0)
    arch = space.sample(rng)
    child = space.mutate(arch, rng)
    assert sum(a != b for a, b in zip(arch, child)) == 1
    assert len(space.neighbours(arch)) == 9 and math.prod([4, 4, 4]) == space.size()


def test_strategy_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Strategy().ask(1)


def test_a_new_run_never_mixes_its_trials_into_an_existing_run_dir(tmp_path):
    make_runner(tmp_path, trials=2).run()
    before = RunDir(tmp_path).trials.read_text()
    with pytest.raises(NasrunError, match="nasrun-resume"):
        make_runner(tmp_path, trials=2).run()
    assert RunDir(tmp_path).trials.read_text() == before


def test_a_runner_without_a_run_directory_runs_the_same_search_in_memory(tmp_path, monkeypatch):
    on_disk = make_runner(tmp_path / "disk")
    on_disk.run()
    monkeypatch.chdir(tmp_path)
    in_memory = make_runner(None)
    summary = in_memory.run()
    assert [(t.id, t.arch, t.metrics) for t in in_memory.trials] == [(t.id, t.arch, t.metrics) for t in on_disk.trials]
    assert summary["best_trial"] == json.loads(RunDir(tmp_path / "disk").summary.read_text())["best_trial"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk"]  # nothing written anywhere else
