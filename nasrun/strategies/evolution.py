"""Generational genetic algorithm: a random first generation; each next generation keeps the `elites`
best of the last one and fills up with children of tournament-selected parents (the space's
crossover with probability `crossover_prob`, then the space's mutation with probability
`mutation_prob`, always when the child equals a parent).

A generation is asked as a batch (all at once or a few at a time) and bred once all of it is told.
"""

from __future__ import annotations

from typing import Any

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


class Evolution(Strategy):
    def __init__(self, population_size: int = 20, tournament_size: int = 3, crossover_prob: float = 0.5,
                 mutation_prob: float = 1.0, elites: int = 1):
        if int(population_size) < 2 or not 1 <= int(tournament_size) <= int(population_size):
            raise ConfigError(f"evolution: need population_size >= 2 and 1 <= tournament_size <= population_size, "
                              f"got {population_size}, {tournament_size}")
        if not 0 <= int(elites) < int(population_size):
            raise ConfigError(f"evolution: elites must be in 0..population_size-1, got {elites}")
        if not (0 <= float(crossover_prob) <= 1 and 0 <= float(mutation_prob) <= 1):
            raise ConfigError(f"evolution: probabilities must be in [0, 1], got {crossover_prob}, {mutation_prob}")
        self.population_size, self.tournament_size = int(population_size), int(tournament_size)
        self.crossover_prob, self.mutation_prob, self.elites = float(crossover_prob), float(mutation_prob), int(elites)

    def random_start(self, space) -> RandomStart:
        """The first generation is random; the second is bred once all of it is told."""
        return RandomStart(self.population_size, "strategy.population_size")

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.novelty = Novelty(space, self.rng, self.preferred)
        self.population: list[list] = []    # [arch as JSON, score] of the last complete generation (+ elites)
        self.queue: list[Any] = [space.to_json(self.novelty.sample()) for _ in range(self.population_size)]
        self.expected = len(self.queue)     # size of the generation being evaluated
        self.told = 0                       # how many of it have been told
        self.results: list[list] = []       # its successful members so far
        self.generation = 0

    def ask(self, n: int) -> list[Any]:
        taken, self.queue = self.queue[:n], self.queue[n:]
        return [self.space.from_json(arch) for arch in taken]

    def tell(self, trials) -> None:
        for trial in trials:
            self.told += 1
            if trial.ok:
                self.results.append([trial.arch, trial.score()])
        if self.told >= self.expected:
            self._next_generation()

    def _next_generation(self) -> None:
        ranked = sorted(self.population, key=lambda member: -member[1])
        self.population = ranked[:self.elites] + self.results
        self.results, self.told, self.generation = [], 0, self.generation + 1
        self.queue = [self.space.to_json(self._child()) for _ in range(self.population_size - self.elites)]
        self.expected = len(self.queue)

    def _child(self) -> Any:
        return self.novelty.child(self._breed) if self.population else self.novelty.sample()

    def _breed(self) -> Any:
        first = self.space.from_json(self._tournament())
        child = first
        if self.rng.random() < self.crossover_prob:
            child = self.space.crossover(first, self.space.from_json(self._tournament()), self.rng)
        if self.rng.random() < self.mutation_prob or self.space.key(child) == self.space.key(first):
            child = self.space.mutate(child, self.rng)
        return child

    def _tournament(self) -> Any:
        contenders = self.rng.sample(self.population, min(self.tournament_size, len(self.population)))
        return max(contenders, key=lambda member: member[1])[0]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": self.novelty.state(), "population": self.population,
                "queue": self.queue, "expected": self.expected, "told": self.told, "results": self.results,
                "generation": self.generation}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
        self.population = [list(m) for m in state["population"]]
        self.results = [list(m) for m in state["results"]]
        self.queue, self.expected, self.told = list(state["queue"]), int(state["expected"]), int(state["told"])
        self.generation = int(state["generation"])
