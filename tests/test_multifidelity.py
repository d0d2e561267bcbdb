"""Multi-fidelity search: training that continues across rungs exactly, the rung schedules of successive
halving, Hyperband, ASHA and BOHB, and searches with them from the CLI that resume and compare."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from conftest import DIGITS_SUBSETS, SMALL_DIGITS, run_cli
from nasrun.commands.reproduce import comparable
from nasrun.rundir import RunDir
from nasrun.datasets.digits import Digits
from nasrun.estimators.base import Fidelity
from nasrun.estimators.early_stopping import EarlyStopping
from nasrun.estimators.full_training import FullTraining
from nasrun.hardware import Hardware
from nasrun.records import TrialLog, Trial, best_trial
from nasrun.spaces.macro import MacroSpace
from nasrun.strategies.asha import ASHA
from nasrun.strategies.bohb import BOHB
from nasrun.strategies.hyperband import Hyperband
from nasrun.strategies.successive_halving import SuccessiveHalving
from toys import ToySpace

SPACE = MacroSpace(min_layers=2, max_layers=3)
TINY_MF = ["search_space.min_layers=2", "search_space.max_layers=3", "progress=false", "report=false", *SMALL_DIGITS]


@pytest.fixture(scope="module")
def digits():
    return Digits(**DIGITS_SUBSETS).load()


@pytest.mark.parametrize("estimator_class, run_dir", [(FullTraining, None), (FullTraining, "files"),
                                                       (EarlyStopping, "files")])
def test_continued_training_equals_one_uninterrupted_run(digits, tmp_path, estimator_class, run_dir):
    settings = {"max_epochs": 4, "patience": 3} if estimator_class is EarlyStopping else {"epochs": 4}
    arch, hardware = SPACE.sample(random.Random(5)), Hardware("cpu")
    whole = estimator_class(**settings)
    whole.bind(SPACE, digits, hardware, None, seed=0)
    expected = whole.evaluate(arch, seed=11)
    stepped = estimator_class(**settings)
    stepped.bind(SPACE, digits, hardware, tmp_path if run_dir else None, seed=0)
    stepped.evaluate(arch, 11, fidelity=Fidelity(1, trial=0))
    stepped.evaluate(arch, 11, fidelity=Fidelity(2, trial=3, continues=0))
    got = stepped.evaluate(arch, 11, fidelity=Fidelity(4, trial=7, continues=3))
    assert got.metrics == expected.metrics
    assert all(torch.equal(got.weights[k], expected.weights[k]) for k in expected.weights)
    if run_dir:   # the continued states are gone, the last one is kept for a promotion
        assert sorted(p.name for p in RunDir(tmp_path).training_states.iterdir()) == ["trial_7.pt"]


def test_a_fidelity_above_the_schedule_is_refused(digits):
    estimator = FullTraining(epochs=2)
    estimator.bind(SPACE, digits, Hardware("cpu"), None, seed=0)
    with pytest.raises(Exception, match="outside 1..2"):
        estimator.evaluate(SPACE.sample(random.Random(0)), 1, fidelity=Fidelity(3, trial=0))


def drive(strategy, scores, rounds: int = 200, order=None) -> list[tuple]:
    """Run `strategy` on the toy space against a fake estimator (score = scores(arch, fidelity)), asking
    3 at a time and telling in `order`; returns (id, fidelity, continues, arch) per evaluation."""
    space = ToySpace(width=4, options=4)
    strategy.fit_fidelity(9, "fake")
    strategy.bind(space, seed=0, budget=rounds)
    history, pending, next_id = [], [], 0
    while next_id < rounds:
        for proposal in strategy.ask(3):
            pending.append(Trial(next_id, proposal.arch, seed=0, fidelity=proposal.fidelity,
                                 continues=proposal.continues))
            next_id += 1
        if not pending:
            break
        batch = (order or (lambda p: p))(pending)
        pending = []
        for trial in batch:
            value = scores(trial.arch, trial.fidelity)
            trial.status = "ok" if value is not None else "failed"
            trial.metrics = {"val_accuracy": value} if value is not None else {}
            history.append((trial.id, trial.fidelity, trial.continues, list(trial.arch)))
        strategy.tell(batch)
    return history


def quality(arch, fidelity):
    return sum(arch) / 12 * fidelity / 9


def test_successive_halving_promotes_the_top_third_rung_by_rung():
    history = drive(SuccessiveHalving(min_epochs=1, eta=3), quality, rounds=13)
    rungs = {f: [h for h in history if h[1] == f] for f in (1, 3, 9)}
    assert [len(rungs[f]) for f in (1, 3, 9)] == [9, 3, 1]        # one bracket: 9 -> 3 -> 1

    def best_of(entries, k):
        return {h[0] for h in sorted(entries, key=lambda h: (-quality(h[3], h[1]), h[0]))[:k]}

    assert {h[2] for h in rungs[3]} == best_of(rungs[1], 3)        # continues the best third of rung 1
    assert {h[2] for h in rungs[9]} == best_of(rungs[3], 1)
    assert all(h[3] == next(g[3] for g in history if g[0] == h[2]) for h in rungs[3] + rungs[9])
    assert history[13 - 1][1] == 9 and len(history) == 13


def test_promotions_ignore_completion_order_and_skip_failed_trials():
    def failing(arch, fidelity):
        return None if arch[0] == 3 else quality(arch, fidelity)

    forward = drive(SuccessiveHalving(eta=3), failing, rounds=26)
    backward = drive(SuccessiveHalving(eta=3), failing, rounds=26, order=lambda p: list(reversed(p)))
    assert sorted(forward) == sorted(backward)
    failed = {h[0] for h in forward if h[3][0] == 3}
    assert failed and not any(h[2] in failed for h in forward)


def test_hyperband_cycles_its_brackets():
    plans = [Hyperband(min_epochs=1, max_epochs=9, eta=3).plan(b) for b in range(4)]
    assert plans[0] == [(9, 1), (3, 3), (1, 9)]
    assert plans[1] == [(5, 3), (1, 9)] and plans[2] == [(3, 9)] and plans[3] == plans[0]


def test_asha_promotes_without_waiting():
    history = drive(ASHA(min_epochs=1, eta=3), quality, rounds=40)
    first_promotion = next(i for i, h in enumerate(history) if h[1] == 3)
    assert first_promotion <= 6                       # after 3 results at rung 1, not after a full rung
    promoted = [h[2] for h in history if h[2] is not None]
    assert len(promoted) == len(set(promoted))        # nobody is promoted twice
    assert any(h[1] == 9 for h in history)


def test_bohb_proposes_from_its_model_once_it_has_enough_results():
    strategy = BOHB(min_epochs=1, eta=3, random_fraction=0.0)
    history = drive(strategy, quality, rounds=60)
    assert strategy.model_proposals > 0
    again = drive(BOHB(min_epochs=1, eta=3, random_fraction=0.0), quality, rounds=60)
    assert history == again                          # seeded: the same search twice


@pytest.mark.parametrize("make, first", [(lambda: SuccessiveHalving(eta=3), 9), (lambda: Hyperband(eta=3), 9),
                                         (lambda: ASHA(eta=3), 3)], ids=["successive_halving", "hyperband", "asha"])
def test_random_start_lasts_until_the_first_promotion(make, first):
    strategy = make()
    strategy.fit_fidelity(9, "fake")
    assert strategy.random_start(ToySpace(width=4, options=4)).trials == first
    history = drive(make(), quality, rounds=first + 3)
    promotions = [index for index, (_, _, continues, _) in enumerate(history) if continues is not None]
    assert promotions[0] == first                     # every evaluation before it is a fresh random configuration
    single_rung = make()
    single_rung.fit_fidelity(2, "fake")               # max_epochs 2 < eta * min_epochs: no promotion ever
    assert single_rung.random_start(ToySpace()).always


def test_bohb_is_random_until_its_model_has_decisions_plus_two_results():
    space = ToySpace(width=4, options=4)
    strategy = BOHB(min_epochs=1, eta=3, random_fraction=0.0)
    strategy.fit_fidelity(9, "fake")
    assert strategy.random_start(space).trials == len(space.decisions()) + 2 == 6
    for rounds, modelled in ((6, False), (9, True)):
        strategy = BOHB(min_epochs=1, eta=3, random_fraction=0.0)
        drive(strategy, quality, rounds=rounds)
        assert (strategy.model_proposals > 0) == modelled


def test_best_trial_is_taken_at_the_highest_fidelity():
    low = Trial(0, [0], metrics={"val_accuracy": 0.99}, fidelity=1)
    high = Trial(1, [1], metrics={"val_accuracy": 0.80}, fidelity=9)
    assert best_trial([low, high]) is high and best_trial([low]) is low


def read(run_dir: Path):
    return TrialLog(RunDir(run_dir).trials).read()


@pytest.mark.parametrize("strategy", ["successive_halving", "hyperband", "asha", "bohb"])
def test_each_strategy_searches_from_the_cli(tmp_path, strategy):
    run_dir = tmp_path / "run"
    result = run_cli([f"strategy={strategy}", "estimator.epochs=3", "budget.trials=4", *TINY_MF,
                      f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = read(run_dir)
    assert len(trials) == 4 and {t.fidelity for t in trials} <= {1, 3} and 3 in {t.fidelity for t in trials}
    summary = json.loads(RunDir(run_dir).summary.read_text())
    best = next(t for t in trials if t.id == summary["best_trial"])
    assert best.fidelity == 3 and not RunDir(run_dir).training_states.exists()
    for trial in trials:
        if trial.continues is not None:
            assert next(t for t in trials if t.id == trial.continues).seed == trial.seed


@pytest.mark.slow  # spawned workers: `make test-slow`
def test_successive_halving_on_worker_processes_equals_the_local_run(tmp_path):
    runs = {}
    for executor in ("local", "processes"):
        run_dir = tmp_path / executor
        result = run_cli(["strategy=successive_halving", "estimator.epochs=3", "budget.trials=4", f"executor={executor}",
                          *TINY_MF, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs[executor] = sorted((comparable(t) for t in read(run_dir)), key=lambda t: t["id"])
    assert runs["processes"] == runs["local"]


@pytest.mark.parametrize("strategy, full_save_seconds", [("successive_halving", 0.0), ("asha", 0.0),
                                                        ("successive_halving", 1e9), ("hyperband", 1e9)])
def test_a_search_killed_mid_bracket_resumes_exactly(tmp_path, monkeypatch, compose_cfg, strategy, full_save_seconds):
    from test_resume import Crash, crash_on_call, start_run
    from nasrun.commands.resume import resume_run
    from nasrun.run import checkpoint

    cfg = compose_cfg([f"strategy={strategy}", "estimator.epochs=3", "budget.trials=6", "seed=2", *TINY_MF])
    start_run(cfg, tmp_path / "reference")
    monkeypatch.setattr(checkpoint, "FULL_SAVE_SECONDS", full_save_seconds)
    with monkeypatch.context() as patch:
        crash_on_call(patch, FullTraining, "evaluate", 4)   # trial 3, the first promotion, is pending
        with pytest.raises(Crash):
            start_run(cfg, tmp_path / "run")
    resume_run(tmp_path / "run", show_progress=False)
    assert [comparable(t) for t in read(tmp_path / "run")] == [comparable(t) for t in read(tmp_path / "reference")]
    summaries = [json.loads(RunDir(tmp_path / d).summary.read_text()) for d in ("reference", "run")]
    assert summaries[0]["test"] == summaries[1]["test"] and summaries[0]["best_trial"] == summaries[1]["best_trial"]


def test_a_multi_fidelity_sweep_appears_in_nasrun_compare(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "strategy=hyperband,random", "estimator.epochs=2", "budget.trials=3", *TINY_MF,
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    compared = run_cli([str(sweep), "--no-plot"], cwd=tmp_path, command="nasrun-compare")
    assert compared.returncode == 0, compared.stderr
    groups = {g["strategy"] for g in json.loads(RunDir(sweep).comparison.read_text())["groups"]}
    assert groups == {"hyperband", "random"}


@pytest.mark.parametrize("overrides, message", [
    (["strategy=successive_halving", "strategy.eta=1"], "eta must be an integer >= 2"),
    (["strategy=asha", "strategy.min_epochs=4", "strategy.max_epochs=2"], "cannot exceed"),
    (["strategy=hyperband", "strategy.max_epochs=9", "estimator.epochs=3"], "exceeds the estimator's epochs"),
    (["strategy=bohb", "estimator=nb201", "search_space=nb201", "~search_space.min_layers",
      "~search_space.max_layers"], "has none"),
])
def test_bad_multi_fidelity_settings_are_one_line_errors(tmp_path, overrides, message):
    run_dir = tmp_path / "run"
    base = [o for o in TINY_MF if not any(o.startswith(r[1:]) for r in overrides if r.startswith("~"))]
    args = [o for o in overrides if not o.startswith("~")]
    if any(o.startswith("search_space=") for o in args):
        base = [o for o in base if not o.startswith("search_space.")]
    result = run_cli([*args, *base, "budget.trials=2", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not RunDir(run_dir).trials.exists()
