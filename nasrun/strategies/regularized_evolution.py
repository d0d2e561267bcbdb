"""Regularized (aging) evolution, Real et al. 2019: keep the `population_size` most recent results;
each new architecture mutates the best of `sample_size` members drawn at random; the oldest member dies.

The first `population_size` proposals are random. Results may arrive in any order and several
architectures may be asked at once: parents are drawn from whatever has been told so far.
"""

from __future__ import annotations

from typing import Any

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


class RegularizedEvolution(Strategy):
    def __init__(self, population_size: int = 10, sample_size: int = 3):
        if int(population_size) < 1 or not 1 <= int(sample_size) <= int(population_size):
            raise ConfigError(f"regularized_evolution: need 1 <= sample_size <= population_size, "
                              f"got {sample_size}, {population_size}")
        self.population_size, self.sample_size = int(population_size), int(sample_size)

    def random_start(self, space) -> RandomStart:
        return RandomStart(self.population_size, "strategy.population_size")

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.novelty = Novelty(space, self.rng, self.preferred)
        self.population: list[list] = []   # [arch as JSON, score], oldest first
        self.random_asked = 0

    def ask(self, n: int) -> list[Any]:
        return [self._propose() for _ in range(n)]

    def _propose(self) -> Any:
        if self.random_asked < self.population_size or not self.population:
            self.random_asked += 1
            return self.novelty.sample()
        contenders = self.rng.sample(self.population, min(self.sample_size, len(self.population)))
        parent = self.space.from_json(max(contenders, key=lambda member: member[1])[0])
        return self.novelty.child(lambda: self.space.mutate(parent, self.rng))

    def tell(self, trials) -> None:
        for trial in trials:
            if trial.ok:
                self.population.append([trial.arch, trial.score()])
                if len(self.population) > self.population_size:
                    self.population.pop(0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": self.novelty.state(), "population": self.population,
                "random_asked": self.random_asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
        self.population = [list(member) for member in state["population"]]
        self.random_asked = int(state["random_asked"])
