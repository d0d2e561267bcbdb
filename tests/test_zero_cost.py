"""estimator=zero_cost (training-free scores, a final training of the chosen architecture) and the
zero-cost warm start of multi-trial strategies, end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import SMALL_DIGITS, run_cli
from nasrun.rundir import RunDir
from nasrun.datasets.digits import Digits
from nasrun.estimators.zero_cost import ZeroCost
from nasrun.hardware import Hardware
from nasrun.records import TrialLog
from nasrun.spaces.macro import MacroSpace

MACRO = ["search_space.min_layers=2", "search_space.max_layers=3", "progress=false", "report=false", *SMALL_DIGITS]
FINAL = ["estimator.final.epochs=1"]
NB201 = ["search_space=nb201", "search_space.C=4", "search_space.N=1", "progress=false", "report=false"]


def run(tmp_path: Path, *overrides: str, name: str = "run"):
    result = run_cli([*overrides, f"hydra.run.dir={tmp_path / name}"], cwd=tmp_path)
    return result, tmp_path / name


def trials(run_dir: Path):
    return TrialLog(RunDir(run_dir).trials).read()


def test_zero_cost_search_records_proxy_scores_and_trains_only_the_final_architecture(tmp_path):
    result, run_dir = run(tmp_path, "estimator=zero_cost", "estimator.proxy=naswot", "budget.trials=5", *MACRO, *FINAL)
    assert result.returncode == 0, result.stderr
    records = trials(run_dir)
    assert len(records) == 5 and all(t.ok for t in records)
    for trial in records:
        assert "val_accuracy" not in trial.metrics            # nothing is made up
        assert trial.metrics["zc_score"] == trial.metrics["zc_naswot"] == trial.metrics["fitness"]
    summary = json.loads(RunDir(run_dir).summary.read_text())
    best = max(records, key=lambda t: t.metrics["zc_score"])
    assert summary["best_trial"] == best.id and summary["best_score"] == best.metrics["zc_score"]
    assert summary["best_val_accuracy"] is None
    test = summary["test"]
    assert test["zc_score"] == best.metrics["zc_score"] and test["final_epochs"] == 1
    assert 0.0 < test["test_accuracy"] <= 1.0 and 0.0 < test["final_val_accuracy"] <= 1.0
    assert RunDir(run_dir).retrained_weights.is_file()


def test_same_seed_same_scores_and_the_score_depends_only_on_the_architecture(tmp_path):
    overrides = ["estimator=zero_cost", "estimator.proxy=[synflow,naswot]", "estimator.reference=6",
                 "budget.trials=4", "final_test=false", *MACRO]
    first, second = run(tmp_path, *overrides, name="a"), run(tmp_path, *overrides, name="b")
    assert first[0].returncode == 0 and second[0].returncode == 0, first[0].stderr + second[0].stderr
    a, b = trials(first[1]), trials(second[1])
    assert [(t.arch, t.metrics) for t in a] == [(t.arch, t.metrics) for t in b]
    for trial in a:   # a vote: the mean fraction of the reference sample beaten
        assert 0.0 <= trial.metrics["zc_score"] <= 1.0 and {"zc_synflow", "zc_naswot"} <= set(trial.metrics)

    space = MacroSpace(min_layers=2, max_layers=3)
    estimator = ZeroCost(proxy=["synflow", "naswot"], reference=6)
    estimator.bind(space, Digits().load(), Hardware("cpu"), None, seed=0)
    arch = space.sample(random.Random(1))
    assert estimator.evaluate(arch, seed=1).metrics == estimator.evaluate(arch, seed=99).metrics


def test_zero_cost_with_the_nb201_table_as_final_loads_no_data(tmp_path):
    result, run_dir = run(tmp_path, "estimator=zero_cost", "estimator.proxy=synflow",
                          "estimator@estimator.final=nb201", "budget.trials=4", *NB201)
    assert result.returncode == 0, result.stderr
    summary = json.loads(RunDir(run_dir).summary.read_text())
    assert {"test_accuracy", "regret", "final_val_accuracy", "zc_score"} <= set(summary["test"])
    assert "dataset digits" not in RunDir(run_dir).log.read_text()   # no dataset was loaded


ZC = ["estimator=zero_cost", *MACRO]


@pytest.mark.parametrize("overrides, message", [
    ([*ZC, "estimator.proxy=magic"], "estimator.proxy"),
    ([*ZC, "estimator.proxy=[synflow,synflow]"], "distinct"),
    ([*ZC, "estimator.batches=0"], "estimator.batches"),
    ([*ZC, "estimator.init_seed=-1"], "estimator.init_seed"),
    (["estimator=zero_cost", "estimator@estimator.final=nb201", "estimator.proxy=naswot", *NB201], "choose its dataset"),
    (["strategy=reinforce", "+strategy.warmup.proxy=synflow", *MACRO], "cannot be warm-started"),
    (["strategy.warmup.proxy=magic", *MACRO], "strategy.warmup.proxy"),
    (["strategy.warmup.keep=200", *MACRO], "cannot exceed"),
])
def test_bad_zero_cost_settings_are_one_line_errors(tmp_path, overrides, message):
    result, run_dir = run(tmp_path, *overrides, "budget.trials=2")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not RunDir(run_dir).trials.exists()


def test_a_proxy_undefined_for_an_architecture_fails_that_trial_only(tmp_path):
    space = MacroSpace(min_layers=2, max_layers=3)
    estimator = ZeroCost(proxy="jacob_cov")
    estimator.bind(space, Digits().load(), Hardware("cpu"), None, seed=0)
    estimator.proxy_scores = lambda arch: {"jacob_cov": float("nan")}
    with pytest.raises(ValueError, match="undefined for this architecture"):
        estimator.evaluate(space.sample(random.Random(0)), seed=0)


def test_warm_start_proposes_the_best_candidates_first(tmp_path):
    result, run_dir = run(tmp_path, "strategy=regularized_evolution", "strategy.population_size=3",
                          "strategy.sample_size=2", "strategy.warmup.proxy=params", "strategy.warmup.candidates=12",
                          "strategy.warmup.keep=3", "budget.trials=5", "estimator.epochs=1", *MACRO)
    assert result.returncode == 0, result.stderr
    warmup = json.loads(RunDir(run_dir).warmup.read_text())
    assert warmup["candidates"] == 12 and warmup["kept"] == 3 and len(warmup["architectures"]) == 12
    ranked = warmup["architectures"]
    assert [a["score"] for a in ranked] == sorted((a["score"] for a in ranked), reverse=True)
    assert [a["kept"] for a in ranked] == [True] * 3 + [False] * 9
    assert [t.arch for t in trials(run_dir)[:3]] == [a["arch"] for a in ranked[:3]]   # the initial population
    summary = json.loads(RunDir(run_dir).summary.read_text())
    assert summary["warmup"]["proxy"] == "params" and summary["trials"] == 5


@pytest.mark.parametrize("strategy", ["random", "tpe", "local_search", "evolution", "nsga2"])
def test_every_warm_startable_strategy_starts_from_the_warm_architectures(tmp_path, strategy):
    extra = {"evolution": ["strategy.population_size=4", "strategy.tournament_size=2"], "local_search": ["strategy.initial_samples=2"],
             "nsga2": ["strategy.population_size=4"]}.get(strategy, [])
    result, run_dir = run(tmp_path, f"strategy={strategy}", *extra, "strategy.warmup.proxy=synflow",
                          "strategy.warmup.candidates=8", "strategy.warmup.keep=2", "budget.trials=3",
                          "estimator=nb201", *NB201)
    assert result.returncode == 0, result.stderr
    kept = [a["arch"] for a in json.loads(RunDir(run_dir).warmup.read_text())["architectures"] if a["kept"]]
    assert [t.arch for t in trials(run_dir)[:2]] == kept


def test_warm_started_zero_cost_run_resumes_exactly(tmp_path, monkeypatch, compose_cfg):
    from test_resume import Crash, crash_on_call, start_run
    from nasrun.commands.reproduce import comparable
    from nasrun.commands.resume import resume_run
    import nasrun.run.runner

    cfg = compose_cfg(["estimator=zero_cost", "estimator.proxy=naswot", "strategy=regularized_evolution",
                       "strategy.population_size=3", "strategy.sample_size=2", "strategy.warmup.proxy=params",
                       "strategy.warmup.candidates=6", "strategy.warmup.keep=2", "budget.trials=5", "seed=4",
                       *MACRO, *FINAL])
    start_run(cfg, tmp_path / "reference")
    with monkeypatch.context() as patch:
        crash_on_call(patch, ZeroCost, "evaluate", 4)
        with pytest.raises(Crash):
            start_run(cfg, tmp_path / "run")
    assert len(trials(tmp_path / "run")) == 3
    monkeypatch.setattr(nasrun.run.runner, "warm_start", lambda *args: pytest.fail("warmed up again on resume"))
    resume_run(tmp_path / "run", show_progress=False)
    assert [comparable(t) for t in trials(tmp_path / "run")] == [comparable(t) for t in trials(tmp_path / "reference")]
    summaries = [json.loads(RunDir(tmp_path / d).summary.read_text()) for d in ("reference", "run")]
    assert summaries[0]["test"] == summaries[1]["test"]
    assert {**summaries[0]["warmup"], "seconds": None} == {**summaries[1]["warmup"], "seconds": None}


def test_a_zero_cost_sweep_appears_in_nasrun_compare(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "estimator=zero_cost", "estimator.proxy=naswot", "seed=0,1", "budget.trials=3",
                      "final_test=false", *MACRO, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    compared = run_cli([str(sweep), "--no-plot"], cwd=tmp_path, command="nasrun-compare")
    assert compared.returncode == 0, compared.stderr
    (group,) = json.loads(RunDir(sweep).comparison.read_text())["groups"]
    assert [job["metric"] for job in group["jobs"]] == ["best_score", "best_score"]
    best = [max(t.metrics["zc_score"] for t in trials(sweep / job["dir"])) for job in group["jobs"]]
    assert [job["value"] for job in group["jobs"]] == best
