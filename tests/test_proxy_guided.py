"""strategy=proxy_guided and strategy=bananas on a toy space (they find its optimum, deterministic, resume
from their JSON state, cope with batches and failures) and end to end: the NB201 table's proxies looked up,
full training on the macro and DARTS spaces, a search killed mid-way and resumed, the CLI equal to
scripts/nb201_table.py seed by seed."""

from __future__ import annotations

import json
import random
import statistics
import sys

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF, REPO, TINY, read_jsonl, run_cli, run_dirs
from test_strategies import found_at, run_search, toy_score
from toys import ToySpace

from nasrun.rundir import RunDir
from nasrun.build import instantiate
from nasrun.errors import ConfigError
from nasrun.estimators.nb201_zc import load_zc_table
from nasrun.records import Trial

sys.path.insert(0, str(REPO / "scripts"))
import nb201_table  # noqa: E402  (the table script's searches, in memory)

SMALL_BANANAS = {"initial": 5, "batch": 4, "candidates": 30, "ensemble": 3, "layers": 3, "width": 16, "epochs": 25}
PARTIAL = ["search_space=nb201", "estimator=nb201", "search_space.partial_table=true", "progress=false", "report=false"]


class ToyScorer:
    """Two proxies of a toy architecture: its score plus a fixed per-architecture noise, and pure noise."""

    last_source = "computed"

    def __init__(self):
        self.computed = 0

    def table_pool(self):
        return None

    def proxy_scores(self, arch) -> dict[str, float]:
        self.computed += 1
        noise = random.Random(str(arch)).random()
        return {"good": toy_score(arch) + 0.3 * noise, "bad": noise}


def make(name: str, **overrides):
    cfg = OmegaConf.load(CONF / "strategy" / f"{name}.yaml")
    settings = {**(SMALL_BANANAS if name == "bananas" else {"proxies": ["good", "bad"], "pool": 40}), **overrides}
    for key, value in settings.items():
        cfg[key] = value
    strategy = instantiate(cfg, "strategy")
    if strategy.proxy_settings is not None:
        strategy.use_proxies(ToyScorer())
    return strategy


@pytest.mark.parametrize("name, budget", [("proxy_guided", 60), ("bananas", 90)])
def test_finds_the_toy_optimum(name, budget):
    space = ToySpace()
    for seed in (0, 1):
        strategy = make(name)
        strategy.bind(space, seed, budget)
        trials = run_search(strategy, space, seed, budget, stop_at_target=True)
        assert found_at(trials) is not None, f"{name} (seed {seed}) missed the optimum in {budget} queries"


@pytest.mark.parametrize("name", ["proxy_guided", "bananas"])
def test_deterministic_and_resumes_from_json_state(name):
    """Same seed, same proposals; interrupted with 2 asked but not told, state → JSON → a fresh instance."""
    space, seed, budget = ToySpace(), 3, 30

    def scenario(interrupt: bool) -> list:
        strategy = make(name)
        strategy.bind(space, seed, budget)
        trials = run_search(strategy, space, seed, 14, batch=2, shuffle_seed=7)
        in_flight = [space.to_json(a) for a in strategy.ask(2)]
        if interrupt:
            state = json.loads(json.dumps(strategy.state_dict(), allow_nan=False))
            strategy = make(name)
            strategy.bind(space, seed, budget)
            strategy.load_state_dict(state)
        notes = [strategy.trial_notes(arch) for arch in in_flight]
        told = [Trial(len(trials) + i, a, {"val_accuracy": toy_score(a)}) for i, a in enumerate(in_flight)]
        strategy.tell(told[::-1])
        run_search(strategy, space, seed, budget, batch=2, shuffle_seed=7, trials=trials + told)
        return [t.arch for t in trials + told] + [t.arch for t in run_search(strategy, space, seed, 5)] + notes

    assert scenario(interrupt=True) == scenario(interrupt=False)
    other = make(name)
    other.bind(space, 4, budget)
    assert [t.arch for t in run_search(other, space, 4, 14, batch=2, shuffle_seed=7)] != scenario(False)[:14]


@pytest.mark.parametrize("name", ["proxy_guided", "bananas"])
def test_failures_and_batches_do_not_stop_the_search(name):
    space = ToySpace(width=3, options=3)   # 27 architectures: also exhausts the pool
    strategy = make(name, **({"pool": 10} if name == "proxy_guided" else {}))
    strategy.bind(space, 0, 27)
    trials = run_search(strategy, space, 0, 27, batch=3, fail=lambda arch: arch[0] == 0)
    assert len({space.key(t.arch) for t in trials}) == 27
    assert any(not t.ok for t in trials) and any(t.ok for t in trials)


def test_proxy_guided_records_predictions_and_trusts_a_good_proxy_more_than_noise():
    space, trust = ToySpace(), {}
    for proxy in ("good", "bad"):
        for focus in (0.01, 1.0):   # 1.0: the model sees the whole pool, not only the proxies' best
            strategy = make("proxy_guided", proxies=[proxy], patience=50, focus=focus)
            strategy.bind(space, 0, 20)
            trials = run_search(strategy, space, 0, 20)
            note = strategy.trial_notes(strategy.ask(1)[0])
            assert {"guide_phase", "proxy_vote", "predicted_score", "predicted_std", "proxy_trust", f"proxy_{proxy}",
                    "proxy_source"} <= set(note) and note["proxy_source"] == "computed"
            trust[proxy, focus] = note["proxy_trust"]
            report = strategy.report()["zero_cost"]
            assert report["computed"] == strategy.proxy_scorer.computed and report["looked_up"] == 0
            if proxy == "good":
                assert max(t.score() for t in trials) >= 0.9
    assert trust["good", 0.01] > trust["bad", 0.01] == 0.0 and trust["good", 1.0] > 0.5 > trust["bad", 1.0]


def test_bananas_loss_top_weighs_errors_at_the_top_most():
    from nasrun.strategies.bananas import error_scale

    scores = torch.tensor([0.2, 0.5, 0.6, 0.9], dtype=torch.float64)
    top = error_scale(scores, "top")
    assert top.argmin() == 3 and top[3] / top[1] == pytest.approx(1 / 3)   # best vs (lower) median: 3x the weight
    assert torch.equal(error_scale(scores, "mape"), scores)
    assert torch.all(error_scale(torch.full((3,), 0.7, dtype=torch.float64), "top") > 0)   # all equal: no 0


@pytest.mark.parametrize("edits, changed", [(0.01, (1.0, 1.2)), (1.5, (1.3, 2.2)), (4.0, (2.0, 4.5))])
def test_bananas_candidates_are_new_mutants_of_the_best_first(edits, changed):
    """At least `candidates` distinct never-proposed mutants, each about `edits` decisions away from a parent,
    most of them from the best result (the next parents only fill up what its mutants cannot)."""
    space = ToySpace()
    strategy = make("bananas", candidates=40, parents=3, edits=edits)
    strategy.bind(space, 0, 100)
    trials = run_search(strategy, space, 0, 12)
    ranked = sorted(trials, key=lambda t: -t.score())
    candidates = strategy._candidates()
    assert len(candidates) >= 40 and len({space.key(a) for a in candidates}) == len(candidates)
    assert not {space.key(a) for a in candidates} & {space.key(t.arch) for t in trials}

    def distance(a, b):
        return sum(x != y for x, y in zip(a, b))

    nearest = [min(distance(a, t.arch) for t in ranked[:3]) for a in candidates]
    assert min(nearest) >= 1 and changed[0] <= statistics.mean(nearest) <= changed[1]
    closest_parent = [min(range(3), key=lambda i: distance(a, ranked[i].arch)) for a in candidates]
    if edits >= 1:   # (about one change has fewer distinct mutants than `candidates` around any parent)
        assert closest_parent.count(0) > len(candidates) / 2


def test_bad_settings_are_config_errors():
    for name, bad in (("proxy_guided", {"patience": 0}), ("proxy_guided", {"proxies": []}),
                      ("bananas", {"epochs": 0}), ("bananas", {"encoding": "adjacency"}), ("bananas", {"edits": 0}),
                      ("bananas", {"loss": "mse"})):
        with pytest.raises(ConfigError, match=name):
            make(name, **bad)


# --- on the NB201 table ---------------------------------------------------------------------------------
def test_proxy_guided_on_nb201_equals_the_table_script_seed_by_seed(tmp_path):
    seeds = [10_000, 10_001]
    result = run_cli(["-m", *PARTIAL, "strategy=proxy_guided", "budget.trials=20", f"seed={','.join(map(str, seeds))}",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    script = nb201_table.run_budgets(("proxy_guided", "cifar10", seeds, [20], [], "true"))
    for run_dir, (by_budget, lookups) in zip(run_dirs(tmp_path / "sweep"), script):
        summary = json.loads(RunDir(run_dir).summary.read_text())
        assert summary["test"]["test_accuracy"] * 100 == pytest.approx(by_budget[20])
        assert summary["zero_cost"]["looked_up"] == lookups == len(load_zc_table().archs())
        trials = read_jsonl(RunDir(run_dir).trials)
        assert all(t["metrics"]["proxy_source"] == "table (CIFAR-10 images)" for t in trials)
        assert "predicted_score" in trials[-1]["metrics"]


# --- full training on the other spaces ------------------------------------------------------------------
@pytest.mark.slow  # DARTS networks trained: `make test-slow`
def test_full_training_on_the_darts_space(tmp_path):
    result = run_cli(["-m", "strategy=proxy_guided,bananas", "search_space=darts", "budget.trials=3", *TINY,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for run_dir in run_dirs(tmp_path / "sweep"):
        trials, summary = read_jsonl(RunDir(run_dir).trials), json.loads(RunDir(run_dir).summary.read_text())
        assert len(trials) == 3 and all(t["status"] == "ok" for t in trials)
        if summary["strategy"] == "proxy_guided":
            assert summary["zero_cost"]["computed"] >= 4 and summary["zero_cost"]["results"] == 3
            assert all(t["metrics"]["proxy_source"] == "computed" for t in trials)


def test_a_search_killed_mid_way_resumes_to_the_same_trials(tmp_path, monkeypatch, compose_cfg):
    from test_resume import Crash, crash_on_call, start_run

    from nasrun.commands.reproduce import comparable
    from nasrun.commands.resume import resume_run
    from nasrun.records import TrialLog
    from nasrun.strategies.proxy_guided import ProxyGuided

    cfg = compose_cfg([*PARTIAL, "strategy=proxy_guided", "budget.trials=12", "seed=5"])

    def outcome(run_dir):
        summary = json.loads(RunDir(run_dir).summary.read_text())
        return [comparable(t) for t in TrialLog(RunDir(run_dir).trials).read()], summary["test"], summary["zero_cost"]

    start_run(cfg, tmp_path / "reference")
    with monkeypatch.context() as patch:
        crash_on_call(patch, ProxyGuided, "tell", 7)
        with pytest.raises(Crash):
            start_run(cfg, tmp_path / "run")
    assert len(TrialLog(RunDir(tmp_path / "run").trials).read()) == 7
    resume_run(tmp_path / "run", show_progress=False)
    assert outcome(tmp_path / "run") == outcome(tmp_path / "reference")
