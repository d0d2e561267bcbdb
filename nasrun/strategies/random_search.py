"""Random search: uniform samples of the space, never the same architecture twice until the space is exhausted."""

from __future__ import annotations

import math
from typing import Any

from nasrun.strategies.base import RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


class RandomSearch(Strategy):
    def random_start(self, space) -> RandomStart:
        return RandomStart(math.inf)

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.novelty = Novelty(space, self.rng, self.preferred)

    def ask(self, n: int) -> list[Any]:
        return [self.novelty.sample() for _ in range(n)]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": self.novelty.state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
