"""GDAS (Dong & Yang, 2019): each forward pass samples one op per edge with the hard Gumbel-softmax
(straight-through gradient to α), so only the sampled op runs. The temperature τ decays linearly from
`tau_max` to `tau_min` over the epochs. First order only."""

from __future__ import annotations

from nasrun.errors import ConfigError
from nasrun.supernets.weighted import GumbelWeighting
from nasrun.strategies.differentiable import DifferentiableSearch


class GdasSearch(DifferentiableSearch):
    name = "gdas"

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1, **settings):
        super().__init__(**settings)
        if self.settings.order != 1:
            raise ConfigError("strategy=gdas is first order only (strategy.order=1)")
        if not 0 < float(tau_min) <= float(tau_max):
            raise ConfigError(f"strategy.tau_min and tau_max must satisfy 0 < tau_min <= tau_max, got {tau_min}, {tau_max}")
        self.tau_max, self.tau_min = float(tau_max), float(tau_min)
        self.weighting = GumbelWeighting(self.tau_max)

    def make_weighting(self) -> GumbelWeighting:
        return self.weighting

    def start_epoch(self, epoch: int) -> dict:
        fraction = epoch / max(self.settings.epochs - 1, 1)
        self.weighting.tau = self.tau_max - (self.tau_max - self.tau_min) * fraction
        return {"tau": self.weighting.tau}
