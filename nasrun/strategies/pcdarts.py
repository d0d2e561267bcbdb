"""PC-DARTS (Xu et al., 2020): mixed ops on 1/k of the channels (the rest bypass the edge, then the
channels are shuffled), and edge normalisation β: each node weighs its incoming edges by softmax(β),
which also scales the edges' strength when the genotype is derived. α is frozen for `warmup_epochs`."""

from __future__ import annotations

from nasrun.errors import ConfigError
from nasrun.supernets.weighted import PartialChannelWeighting
from nasrun.strategies.differentiable import DifferentiableSearch


class PCDartsSearch(DifferentiableSearch):
    name = "pcdarts"

    def __init__(self, k: int = 4, **settings):
        super().__init__(**settings)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or self.C % (2 * k):
            raise ConfigError(f"strategy.k must be a positive integer with C divisible by 2k "
                              f"(each edge sees C/k channels, an even number), got k={k!r}, C={self.C}")
        self.k = k

    def make_weighting(self) -> PartialChannelWeighting:
        return PartialChannelWeighting(self.k)
