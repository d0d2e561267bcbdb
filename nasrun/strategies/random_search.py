"""Random search: uniform samples of the space, never the same architecture twice until the space is exhausted."""

from __future__ import annotations

from typing import Any

from nasrun.strategies.base import Strategy


class RandomSearch(Strategy):
    def __init__(self, max_resample: int = 1000):
        self.max_resample = int(max_resample)

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.seen: set[str] = set()

    def ask(self, n: int) -> list[Any]:
        return [self._fresh_sample() for _ in range(n)]

    def _fresh_sample(self) -> Any:
        """A sample not proposed before; duplicates only once every architecture has been proposed."""
        arch = self.space.sample(self.rng)
        exhausted = len(self.seen) >= self.space.size()
        for _ in range(self.max_resample):
            if exhausted or self.space.key(arch) not in self.seen:
                break
            arch = self.space.sample(self.rng)
        self.seen.add(self.space.key(arch))
        return arch

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seen = set(state["seen"])
