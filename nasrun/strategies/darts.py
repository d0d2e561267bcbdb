"""DARTS (Liu et al., 2019): softmax-weighted mixed ops, α by gradient descent on the held-out half,
first order (`order: 1`) or through one unrolled weight step (`order: 2`)."""

from __future__ import annotations

from nasrun.strategies.differentiable import DifferentiableSearch


class DartsSearch(DifferentiableSearch):
    name = "darts"
