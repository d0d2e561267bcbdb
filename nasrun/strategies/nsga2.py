"""NSGA-II (Deb et al., 2002), steady-state for ask/tell: a population ranked by non-dominated sorting
on the run's objectives, ties broken by crowding distance, constraints handled by constrained
domination (a feasible architecture beats an infeasible one; between infeasible ones, the smaller
violation wins). Parents are picked by binary tournament; children come from the space's crossover
and mutation. Every result that arrives competes for a place in the population at once.

Unlike single-objective strategies it ranks by the objectives' metrics themselves, not by
`trial.score()`: that is what a Pareto search is.
"""

from __future__ import annotations

import logging
from typing import Any

from nasrun.errors import ConfigError
from nasrun.assessment.objectives import Objectives, crowding_distance, non_dominated_sort
from nasrun.records import Trial
from nasrun.strategies.base import RandomStart, Strategy

log = logging.getLogger("nasrun")


class NSGA2(Strategy):
    def __init__(self, population_size: int = 16, tournament_size: int = 2, crossover_prob: float = 0.9,
                 objectives: list | None = None, constraints: dict | None = None, max_resample: int = 100):
        if int(population_size) < 2 or int(tournament_size) < 1 or not 0 <= float(crossover_prob) <= 1:
            raise ConfigError("nsga2: need population_size >= 2, tournament_size >= 1, 0 <= crossover_prob <= 1")
        self.population_size, self.tournament_size = int(population_size), int(tournament_size)
        self.crossover_prob, self.max_resample = float(crossover_prob), int(max_resample)
        self.objectives = Objectives(objectives, constraints)
        if not self.objectives.multi:
            log.warning("nsga2 with one objective is a plain genetic algorithm; give it two or more, e.g. "
                        "objectives='[{metric:val_accuracy,direction:max},{metric:params,direction:min}]'")

    def random_start(self, space) -> RandomStart:
        return RandomStart(self.population_size, "strategy.population_size")

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.population: list[dict] = []   # {"arch", "point", "violation"}
        self.seen: set[str] = set()
        self.asked = 0
        self.warm = [space.to_json(arch) for arch in self.preferred]  # warm-start members not proposed yet

    # --- proposals -------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Any]:
        return [self._propose() for _ in range(n)]

    def _propose(self) -> Any:
        breed = self.asked >= self.population_size and len(self.population) >= 2
        self.asked += 1
        while self.warm and not breed:
            child = self.space.from_json(self.warm.pop(0))
            if self.space.key(child) not in self.seen:
                self.seen.add(self.space.key(child))
                return child
        child = self._child() if breed else self.space.sample(self.rng)
        for _ in range(self.max_resample):
            if self.space.key(child) not in self.seen or len(self.seen) >= self.space.size():
                break
            child = self._child() if breed else self.space.sample(self.rng)
        self.seen.add(self.space.key(child))
        return child

    def _child(self) -> Any:
        first, second = self._tournament(), self._tournament()
        if self.rng.random() < self.crossover_prob:
            child = self.space.crossover(first, second, self.rng)
        else:
            child = first
        return self.space.mutate(child, self.rng)

    def _tournament(self) -> Any:
        ranks = self._ranks()
        entrants = [self.rng.randrange(len(self.population)) for _ in range(self.tournament_size)]
        winner = min(entrants, key=lambda i: ranks[i])
        return self.space.from_json(self.population[winner]["arch"])

    # --- selection -------------------------------------------------------------------------------
    def tell(self, trials: list[Trial]) -> None:
        for trial in trials:
            point = self.objectives.point(trial)
            if point is not None:
                self.population.append({"arch": trial.arch, "point": list(point),
                                        "violation": self.objectives.violation(trial.metrics)})
        if len(self.population) > self.population_size:
            ranks = self._ranks()
            keep = sorted(range(len(self.population)), key=lambda i: ranks[i])[:self.population_size]
            self.population = [self.population[i] for i in sorted(keep)]

    def _ranks(self) -> list[tuple]:
        """(front, -crowding) per member, lower is better; infeasible members rank after every front,
        by violation."""
        feasible = [i for i, m in enumerate(self.population) if m["violation"] == 0]
        ranks: list[tuple] = [()] * len(self.population)
        fronts = non_dominated_sort([self.population[i]["point"] for i in feasible])
        for level, front in enumerate(fronts):
            members = [feasible[j] for j in front]
            distances = crowding_distance([self.population[i]["point"] for i in members])
            for i, distance in zip(members, distances):
                ranks[i] = (level, -distance)
        for i, member in enumerate(self.population):
            if member["violation"] > 0:
                ranks[i] = (len(fronts), member["violation"])
        return ranks

    # --- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "population": [dict(m) for m in self.population], "seen": sorted(self.seen),
                "asked": self.asked, "warm": self.warm}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.population = [dict(m) for m in state["population"]]
        self.seen, self.asked = set(state["seen"]), int(state["asked"])
        self.warm = list(state.get("warm", []))  # absent in checkpoints written before warm starts
