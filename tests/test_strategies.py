"""Multi-trial strategies on a toy space with a known optimum: they find it, they are deterministic,
they resume exactly from their state dict, and they cope with batched asks, any tell order and failures."""

from __future__ import annotations

import json
import math
import random

import pytest
from conftest import CONF
from omegaconf import OmegaConf
from toys import ToySpace

from nasrun.build import instantiate
from nasrun.errors import ConfigError
from nasrun.records import Trial

STRATEGIES = ["random", "evolution", "regularized_evolution", "reinforce", "local_search", "local_search_first", "tpe"]
TARGET = [3, 1, 2, 0, 3, 1]



def toy_score(arch: list[int]) -> float:
    """A unimodal toy objective in 0..1 with its unique optimum at TARGET."""
    return 1.0 - sum(abs(a - t) for a, t in zip(arch, TARGET)) / (3 * len(TARGET))


def make_strategy(name: str, **overrides):
    cfg = OmegaConf.load(CONF / "strategy" / f"{name}.yaml")
    for key, value in overrides.items():
        cfg[key] = value
    return instantiate(cfg, "strategy")


def run_search(strategy, space, seed: int, budget: int, batch: int = 1, shuffle_seed: int | None = None,
               fail=lambda arch: False, trials: list | None = None, stop_at_target: bool = False) -> list[Trial]:
    """Ask `batch` at a time, tell them back (shuffled when `shuffle_seed` is set) until `budget` trials
    (or until TARGET was proposed, with `stop_at_target`)."""
    trials = [] if trials is None else trials
    order = random.Random(shuffle_seed)
    while len(trials) < budget and not (stop_at_target and found_at(trials)):
        archs = strategy.ask(min(batch, budget - len(trials)))
        assert archs, "a strategy with nothing pending must propose something"
        told = []
        for arch in archs:
            arch = space.to_json(arch)
            metrics = {} if fail(arch) else {"val_accuracy": toy_score(arch)}
            told.append(Trial(len(trials), arch, metrics, status="failed" if fail(arch) else "ok"))
            trials.append(told[-1])
        if shuffle_seed is not None:
            order.shuffle(told)
        strategy.tell(told)
    return trials


def found_at(trials: list[Trial]) -> int | None:
    return next((i + 1 for i, t in enumerate(trials) if t.arch == TARGET), None)


# Queries each strategy gets to find the optimum of the 4,096-architecture toy space (random search
# gets the whole space: it must find it by never repeating itself).
BUDGETS = {"random": 4096, "evolution": 250, "regularized_evolution": 250, "reinforce": 200,
           "local_search": 120, "local_search_first": 120, "tpe": 150}


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_finds_the_known_optimum(name):
    space = ToySpace()
    for seed in (0, 1):
        strategy = make_strategy(name)
        strategy.bind(space, seed, BUDGETS[name])
        trials = run_search(strategy, space, seed, BUDGETS[name], stop_at_target=True)
        assert found_at(trials) is not None, f"{name} (seed {seed}) missed the optimum in {BUDGETS[name]} queries"


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_proposals(name):
    space = ToySpace()

    def proposals(seed):
        strategy = make_strategy(name)
        strategy.bind(space, seed, 40)
        return [t.arch for t in run_search(strategy, space, seed, 40, batch=3, shuffle_seed=seed)]

    assert proposals(0) == proposals(0)
    assert proposals(0) != proposals(1)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("batch", [1, 4])
def test_state_dict_resume_continues_identically(name, batch):
    """Interrupt after 28 queries with 2 asked but not told; state_dict → JSON → a fresh instance; go on.
    The architectures proposed must be those of the same run without the interruption."""
    space, seed, budget = ToySpace(), 3, 60

    def scenario(interrupt: bool) -> list:
        strategy = make_strategy(name)
        strategy.bind(space, seed, budget)
        trials = run_search(strategy, space, seed, 28, batch=batch, shuffle_seed=7)
        in_flight = [space.to_json(a) for a in strategy.ask(2)]
        if interrupt:
            state = json.loads(json.dumps(strategy.state_dict(), allow_nan=False))
            strategy = make_strategy(name)
            strategy.bind(space, seed, budget)
            strategy.load_state_dict(state)
        told = [Trial(len(trials) + i, arch, {"val_accuracy": toy_score(arch)}) for i, arch in enumerate(in_flight)]
        strategy.tell(told[::-1])
        run_search(strategy, space, seed, budget, batch=batch, shuffle_seed=7, trials=trials + told)
        return [t.arch for t in trials + told] + [t.arch for t in run_search(strategy, space, seed, 5)]

    assert scenario(interrupt=True) == scenario(interrupt=False)


@pytest.mark.parametrize("name", STRATEGIES)
def test_failed_trials_do_not_stop_the_search(name):
    space = ToySpace()
    strategy = make_strategy(name)
    strategy.bind(space, 0, 40)
    trials = run_search(strategy, space, 0, 40, batch=2, fail=lambda arch: arch[0] == 0)
    assert len(trials) == 40
    assert any(not t.ok for t in trials) and any(t.ok for t in trials)


@pytest.mark.parametrize("name", STRATEGIES)
def test_no_repeats_before_the_space_is_exhausted(name):
    space = ToySpace(width=3, options=3)   # 27 architectures
    strategy = make_strategy(name)
    strategy.bind(space, 0, 27)
    keys = [space.key(t.arch) for t in run_search(strategy, space, 0, 27)]
    assert len(set(keys)) == 27


def test_random_repeats_only_after_exhaustion():
    space = ToySpace(width=2, options=3)
    strategy = make_strategy("random")
    strategy.bind(space, 0, 12)
    keys = [space.key(a) for a in strategy.ask(12)]
    assert len(set(keys[:9])) == 9 and len(keys) == 12


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("space_name", ["nb201", "macro"])
def test_strategies_are_space_agnostic(name, space_name):
    space = instantiate(OmegaConf.load(CONF / "search_space" / f"{space_name}.yaml"), "search_space")
    strategy = make_strategy(name)
    strategy.bind(space, 0, 30)
    for trial_id in range(30):
        arch = strategy.ask(1)[0]
        space.validate(arch)
        strategy.tell([Trial(trial_id, space.to_json(arch), {"val_accuracy": random.Random(trial_id).random()})])


@pytest.mark.parametrize("name, bad", [
    ("regularized_evolution", {"sample_size": 0}), ("regularized_evolution", {"population_size": 2, "sample_size": 3}),
    ("evolution", {"population_size": 1}), ("evolution", {"crossover_prob": 1.5}), ("evolution", {"elites": 20}),
    ("reinforce", {"lr": 0}), ("reinforce", {"baseline_decay": 1.0}), ("local_search", {"initial_samples": 0}),
    ("tpe", {"n_startup_trials": 0}),
])
def test_bad_strategy_settings_are_config_errors(name, bad):
    with pytest.raises(ConfigError, match=name):
        make_strategy(name, **bad)


def test_trials_are_ranked_by_score_only():
    """A run-set `fitness` overrides val_accuracy: regularized evolution's parents follow it."""
    space = ToySpace()
    strategy = make_strategy("regularized_evolution", population_size=4, sample_size=4)
    strategy.bind(space, 0, 10)
    archs = [space.to_json(a) for a in strategy.ask(4)]
    strategy.tell([Trial(i, a, {"val_accuracy": 0.9 if i == 0 else 0.1, "fitness": 1.0 if i == 3 else 0.0})
                   for i, a in enumerate(archs)])
    child = strategy.ask(1)[0]
    assert sum(x != y for x, y in zip(child, archs[3])) == 1   # a mutation of the fittest, not the most accurate
    assert math.isclose(max(m[1] for m in strategy.population), 1.0)


# --- random start: how many trials a strategy is random search for -----------------------------------------
@pytest.mark.parametrize("name, setting, value", [
    ("evolution", "population_size", 12), ("regularized_evolution", "population_size", 12),
    ("local_search", "initial_samples", 6), ("local_search_first", "initial_samples", 6),
    ("tpe", "n_startup_trials", 6), ("nsga2", "population_size", 6), ("random", None, math.inf),
    ("reinforce", None, 1),
])
def test_random_start_is_what_the_config_sets(name, setting, value):
    overrides = {setting: value} if setting else {}
    if name == "nsga2":
        overrides.update(objectives=None, constraints=None)
    start = make_strategy(name, **overrides).random_start(ToySpace())
    assert (start.trials, start.setting) == (value, f"strategy.{setting}" if setting else None)


@pytest.mark.parametrize("name", ["evolution", "regularized_evolution", "local_search"])
def test_within_its_random_start_a_strategy_proposes_what_random_search_does(name):
    space = ToySpace()
    key = "initial_samples" if name.startswith("local_search") else "population_size"
    strategy, random_search = make_strategy(name, **{key: 12}), make_strategy("random")
    start = int(strategy.random_start(space).trials)
    for each in (strategy, random_search):
        each.bind(space, 0, start + 6)
    guided, plain = (run_search(each, space, 0, start + 6) for each in (strategy, random_search))
    assert [t.arch for t in guided[:start]] == [t.arch for t in plain[:start]]
    assert [t.arch for t in guided[start:]] != [t.arch for t in plain[start:]]   # then it uses the results
