"""Hyperband (Li et al., 2018): successive-halving brackets that trade many configurations trained
briefly against few trained long. With s_max = floor(log_eta(max/min)), bracket s = s_max .. 0 (then
again) starts ceil((s_max + 1) / (s + 1) · eta^s) configurations at max_epochs / eta^s epochs and
halves them by eta per rung up to max_epochs.
"""

from __future__ import annotations

import math

from nasrun.strategies.base import RandomStart
from nasrun.strategies.fidelity import most_rungs, rung_epochs
from nasrun.strategies.successive_halving import SuccessiveHalving


class Hyperband(SuccessiveHalving):
    def __init__(self, min_epochs: int = 1, max_epochs: int | None = None, eta: int = 3):
        super().__init__(min_epochs, max_epochs, eta)

    def random_start(self, space) -> RandomStart:
        """The first bracket, the widest, starts eta^(rungs - 1) random configurations."""
        start = super().random_start(space)
        return start if start.always else RandomStart(start.trials, "eta^(rungs - 1)", "raise strategy.min_epochs")

    def plan(self, bracket: int) -> list[tuple[int, int]]:
        s_max = most_rungs(self.min_epochs, self.max_epochs, self.eta) - 1
        s = s_max - bracket % (s_max + 1)
        first = math.ceil((s_max + 1) / (s + 1) * self.eta ** s)
        epochs = rung_epochs(self.min_epochs, self.max_epochs, self.eta, s + 1)
        return [(max(1, first // self.eta ** k), e) for k, e in enumerate(epochs)]
