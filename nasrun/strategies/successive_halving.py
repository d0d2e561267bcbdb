"""Successive halving (Jamieson & Talwalkar, 2016), synchronous: a bracket trains `configs` new
configurations for the lowest rung's epochs, promotes the best 1/eta of them to the next rung (their
training continues), and so on up to max_epochs; then the next bracket starts with fresh configurations.
A rung is promoted only once all its evaluations are back (ask returns nothing while waiting); a failed
evaluation is never promoted. Rungs and promotion rules: nasrun/strategies/fidelity.py.
"""

from __future__ import annotations

from typing import Any

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart
from nasrun.strategies.fidelity import SINGLE_RUNG, MultiFidelity, most_rungs, rung_epochs, top


class SuccessiveHalving(MultiFidelity):
    def __init__(self, min_epochs: int = 1, max_epochs: int | None = None, eta: int = 3, configs: int | None = None):
        super().__init__(min_epochs, max_epochs, eta)
        if configs is not None and (isinstance(configs, bool) or not isinstance(configs, int) or configs < 1):
            raise ConfigError(f"successive_halving: configs must be a positive integer or null, got {configs!r}")
        self.configs = configs

    def plan(self, bracket: int) -> list[tuple[int, int]]:
        """(configurations, epochs) per rung of bracket number `bracket`."""
        epochs = rung_epochs(self.min_epochs, self.max_epochs, self.eta,
                             most_rungs(self.min_epochs, self.max_epochs, self.eta))
        first = self.configs or self.eta ** (len(epochs) - 1)
        return [(max(1, first // self.eta ** k), e) for k, e in enumerate(epochs)]

    def random_start(self, space) -> RandomStart:
        """The first rung of the first bracket is fresh random configurations; promotions start once it is
        all told (never with a single rung: then every bracket is random configurations)."""
        plan = self.plan(0)
        return RandomStart(plan[0][0], "strategy.configs") if len(plan) > 1 else SINGLE_RUNG

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.bracket, self.rung = -1, 0
        self.queue: list[list] = []        # [arch JSON or None (a new configuration), trial it continues]
        self.waiting: list[str] = []       # keys of the rung's evaluations asked, not told yet
        self.results: list[list] = []      # the rung's told results: [trial id, arch JSON, score]
        self._next_bracket()

    def _next_bracket(self) -> None:
        self.bracket, self.rung, self.results = self.bracket + 1, 0, []
        self.queue = [[None, None] for _ in range(self.plan(self.bracket)[0][0])]

    def _advance(self) -> None:
        """The rung is complete: promote its best to the next rung, or start the next bracket."""
        plan = self.plan(self.bracket)
        promoted = top(self.results, plan[self.rung + 1][0]) if self.rung + 1 < len(plan) else []
        if not promoted:
            self._next_bracket()
            return
        self.rung, self.results = self.rung + 1, []
        self.queue = [[arch, trial_id] for trial_id, arch, _ in promoted]

    def ask(self, n: int) -> list[Any]:
        epochs = self.plan(self.bracket)[self.rung][1]
        proposals = []
        while self.queue and len(proposals) < n:
            arch, continues = self.queue.pop(0)
            arch = self.new_config() if arch is None else self.space.from_json(arch)
            self.waiting.append(self.space.key(arch))
            proposals.append(self.propose(arch, epochs, continues))
        return proposals

    def tell(self, trials) -> None:
        for trial in trials:
            entry = self.observe(trial)
            key = self.space.key(trial.arch)
            if key in self.waiting:
                self.waiting.remove(key)
                self.results.append(entry)
        while not self.queue and not self.waiting:
            self._advance()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "bracket": self.bracket, "rung": self.rung, "queue": self.queue,
                "waiting": self.waiting, "results": self.results}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.bracket, self.rung = int(state["bracket"]), int(state["rung"])
        self.queue = [list(q) for q in state["queue"]]
        self.waiting, self.results = list(state["waiting"]), [list(r) for r in state["results"]]
