"""Best-improvement hill climbing over the space's neighbours, with random restarts.

A climb starts from the best of `initial_samples` random architectures. Each step scores every
neighbour of the current architecture (neighbours already scored cost no query) and moves to the best
one if it beats the current (with `first_improvement`, to the first better one found, skipping the rest
of the neighbourhood); at a local optimum the climb restarts from new random samples
(`restart_samples` of them). The candidates of a step may be asked all at once and told in any order;
the step is taken once all of them are back.
"""

from __future__ import annotations

import math
from typing import Any

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


class LocalSearch(Strategy):
    def __init__(self, initial_samples: int = 10, restart_samples: int = 10, first_improvement: bool = False):
        if int(initial_samples) < 1 or int(restart_samples) < 1:
            raise ConfigError(f"local_search: initial_samples and restart_samples must be >= 1, "
                              f"got {initial_samples}, {restart_samples}")
        self.initial_samples, self.restart_samples = int(initial_samples), int(restart_samples)
        self.first_improvement = bool(first_improvement)

    def random_start(self, space) -> RandomStart:
        """The first climb starts from the best of the initial samples; its first step is trial initial_samples + 1."""
        return RandomStart(self.initial_samples, "strategy.initial_samples")

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.novelty = Novelty(space, self.rng, self.preferred)
        self.scores: dict[str, float] = {}      # key -> score of every architecture told
        self.current: list | None = None        # [arch as JSON, score] of the climb's position
        self.candidates: list = []              # archs (JSON) this step compares
        self.queue: list = []                   # candidates not asked yet
        self.pending = 0                        # candidates asked, not told yet
        self.climbs = 0
        self._start_climb(self.initial_samples)

    # --- ask / tell -----------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Any]:
        taken, self.queue = self.queue[:n], self.queue[n:]
        self.pending += len(taken)
        return [self.novelty.add(self.space.from_json(arch)) for arch in taken]

    def tell(self, trials) -> None:
        for trial in trials:
            self.scores[self.space.key(trial.arch)] = trial.score()
            self.pending -= 1
            if self.first_improvement and self.current is not None and trial.score() > self.current[1]:
                self.queue = []   # move as soon as the pending candidates are back
        while not self.queue and self.pending <= 0:
            self._step()

    # --- the climb ------------------------------------------------------------------------------------
    def _score(self, arch: Any) -> float:
        return self.scores.get(self.space.key(arch), -math.inf)

    def _start_climb(self, samples: int) -> None:
        self.current, self.climbs = None, self.climbs + 1
        self.candidates = [self.space.to_json(self.novelty.sample()) for _ in range(samples)]
        self.queue = list(self.candidates)   # fresh samples; repeats only once the space is exhausted

    def _set_candidates(self, archs: list) -> None:
        """Compare `archs`; ask only those never scored."""
        self.candidates = archs
        self.queue = [arch for arch in archs if self.space.key(arch) not in self.scores]

    def _step(self) -> None:
        """All candidates are scored: move to the best one if it improves, else restart."""
        best = max(self.candidates, key=self._score, default=None)
        if best is not None and (self.current is None or self._score(best) > self.current[1]):
            self.current = [best, self._score(best)]
            neighbours = self.space.neighbours(self.space.from_json(best))
            self.rng.shuffle(neighbours)
            self._set_candidates([self.space.to_json(arch) for arch in neighbours])
        else:
            self._start_climb(self.restart_samples)

    def state_dict(self) -> dict:
        finite = {key: score for key, score in self.scores.items() if math.isfinite(score)}
        return {**super().state_dict(), "seen": self.novelty.state(), "scores": finite,
                "failed": sorted(set(self.scores) - set(finite)), "current": self.current,
                "candidates": self.candidates, "queue": self.queue, "pending": self.pending, "climbs": self.climbs}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
        self.scores = {**dict.fromkeys(state["failed"], -math.inf), **state["scores"]}
        self.current = state["current"]
        self.candidates, self.queue = list(state["candidates"]), list(state["queue"])
        self.pending, self.climbs = int(state["pending"]), int(state["climbs"])
