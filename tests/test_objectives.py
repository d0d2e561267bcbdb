"""Dominance, non-dominated sorting, scalarised fitness, constraints and NSGA-II on a toy problem."""

from __future__ import annotations

import json
import math

import pytest
from toys import ToySpace

from nasrun.errors import ConfigError
from nasrun.assessment.objectives import Objectives, crowding_distance, dominates, non_dominated_sort
from nasrun.records import Trial, best_trial
from nasrun.strategies.nsga2 import NSGA2

ACC_LAT = [{"metric": "val_accuracy", "direction": "max"}, {"metric": "latency_ms", "direction": "min"}]


def test_dominance_on_hand_made_points():
    assert dominates((2, 2), (1, 2))
    assert dominates((2, 3), (1, 1))
    assert not dominates((2, 2), (2, 2))          # equal points do not dominate each other
    assert not dominates((3, 1), (1, 3))          # a trade-off
    assert not dominates((1, 2), (2, 2))


def test_non_dominated_sort_on_hand_made_points():
    points = [(1, 5), (2, 4), (3, 3), (2, 2), (1, 1), (3, 1), (0, 0), (4, 0)]
    fronts = non_dominated_sort(points)
    assert fronts == [[0, 1, 2, 7], [3, 5], [4], [6]]
    assert sorted(i for front in fronts for i in front) == list(range(len(points)))


def test_crowding_distance_favours_boundaries_and_sparse_points():
    distance = crowding_distance([(0, 4), (1, 3), (3, 1), (4, 0)])
    assert distance[0] == distance[3] == math.inf
    assert distance[1] == pytest.approx(distance[2]) == pytest.approx(3 / 4 + 3 / 4)


def trial(i, **metrics):
    return Trial(i, {"id": i}, metrics=dict(metrics))


def test_weighted_sum_fitness_and_constraints():
    objectives = Objectives(ACC_LAT, {"latency_ms": {"max": 5}})
    fast, slow = trial(0, val_accuracy=0.8, latency_ms=2.0), trial(1, val_accuracy=0.95, latency_ms=9.0)
    for t in (fast, slow):
        objectives.assess(t)
    assert fast.metrics["feasible"] == 1 and fast.metrics["constraint_violation"] == 0
    assert fast.metrics["fitness"] == pytest.approx(0.8 - 2.0 / 5)      # the constraint bound is the scale
    assert slow.metrics["feasible"] == 0 and slow.metrics["constraint_violation"] == pytest.approx(4 / 5)
    assert slow.score() == -math.inf
    assert best_trial([slow, fast]) is fast


def test_mnasnet_reward():
    objectives = Objectives([{"metric": "val_accuracy"}, {"metric": "latency_ms", "direction": "min",
                                                          "target": 4, "weight": 0.07}], scalarization="mnasnet")
    assert objectives.fitness({"val_accuracy": 0.9, "latency_ms": 8}) == pytest.approx(0.9 * 2 ** -0.07)
    assert objectives.fitness({"val_accuracy": 0.9, "latency_ms": 4}) == pytest.approx(0.9)


def test_only_val_accuracy_needs_no_fitness():
    t = trial(0, val_accuracy=0.5)
    Objectives().assess(t)
    assert "fitness" not in t.metrics and "feasible" not in t.metrics and t.score() == 0.5


def test_pareto_front_skips_dominated_and_infeasible_trials():
    objectives = Objectives(ACC_LAT, {"params": {"max": 100}})
    trials = [trial(0, val_accuracy=0.9, latency_ms=3, params=10), trial(1, val_accuracy=0.8, latency_ms=1, params=10),
              trial(2, val_accuracy=0.7, latency_ms=2, params=10), trial(3, val_accuracy=0.99, latency_ms=0.5, params=500)]
    assert [t.id for t in objectives.pareto_front(trials)] == [0, 1]


@pytest.mark.parametrize("bad", [
    {"objectives": [{"metric": "val_accuracy", "direction": "up"}]},
    {"objectives": [{"name": "val_accuracy"}]},
    {"constraints": {"latency_ms": 5}},
    {"constraints": {"latency_ms": {"below": 5}}},
    {"scalarization": "product"},
])
def test_bad_objective_config_is_a_clear_error(bad):
    with pytest.raises(ConfigError):
        Objectives(**bad)



TOY = dict(objectives=[{"metric": "total"}, {"metric": "zeros"}], constraints={"total": {"max": 15}})


def run_toy(strategy, budget=100, seed=0):
    """Maximise the genes' total and their number of zeros, total <= 15. The Pareto front: genes all
    0 or 3, with at most five 3s: six objective points."""
    objectives = Objectives(**TOY)
    strategy.bind(ToySpace(), seed, budget)
    trials = []
    for i in range(budget):
        arch = strategy.ask(1)[0]
        t = Trial(i, arch, metrics={"total": sum(arch), "zeros": arch.count(0)})
        objectives.assess(t)
        trials.append(t)
        strategy.tell([t])
    return objectives.pareto_front(trials)


def true_front_points(front):
    return {(t.metrics["total"], t.metrics["zeros"]) for t in front if set(t.arch) <= {0, 3}}


def test_nsga2_finds_the_front_of_a_toy_problem_and_resumes_exactly():
    nsga = NSGA2(population_size=8, **TOY)
    front = run_toy(nsga)
    assert len(true_front_points(front)) >= 4          # of 6
    assert all(sum(m["arch"]) <= 15 for m in nsga.population)
    state = json.loads(json.dumps(nsga.state_dict()))
    twin = NSGA2(population_size=8, **TOY)
    twin.bind(ToySpace(), 0, 100)
    twin.load_state_dict(state)
    assert twin.ask(3) == nsga.ask(3)


def test_nsga2_beats_random_sampling_on_the_toy_front():
    from nasrun.strategies.random_search import RandomSearch

    nsga = [len(true_front_points(run_toy(NSGA2(population_size=8, **TOY), seed=s))) for s in range(3)]
    rand = [len(true_front_points(run_toy(RandomSearch(), seed=s))) for s in range(3)]
    assert sum(nsga) > sum(rand)
