"""The model proxy_guided fits to its results: a Gaussian process over two views of an architecture, its
zero-cost proxy ranks and its encoding, whose fitted hyperparameters say how far the proxies are trusted.

    k(a, b) = w · exp(-|z_a - z_b|² / 2ℓ_z²) + (1 - w) · exp(-hamming(a, b) / ℓ_h) + σ² [a = b]

z: each proxy's quantile rank in the candidate pool (an undefined proxy ranks lowest); hamming: how many
decisions of the encoding differ. The weight w of the proxy kernel (0: ignore the proxies, 1: only them),
the length scales and the noise are those of highest marginal likelihood of the standardised results on a
fixed grid, so a fit is deterministic and needs no random restarts. Expected improvement over the best
result ranks the candidates.

The pool is fixed between `set_pool` calls; the distances from every pool member to each observed one are
computed once, when it is observed, so a step over the whole NB201 space (15,625 candidates) costs
milliseconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import ndtr

PROXY_WEIGHTS = (0.0, 0.3, 0.6, 0.9, 1.0)
PROXY_SCALES = (0.1, 0.3)
HAMMING_SCALES = (1.0, 3.0)
NOISES = (0.01, 0.1)


def quantile_ranks(values: np.ndarray) -> np.ndarray:
    """Column-wise rank in [0, 1] (ties share their mean rank); NaN ranks 0, below everything."""
    ranks = np.zeros(values.shape, dtype=float)
    for column in range(values.shape[1]):
        data = values[:, column]
        finite = np.isfinite(data)
        if finite.sum() < 2:
            continue
        ordered = np.sort(data[finite])
        first = np.searchsorted(ordered, data[finite], side="left")
        last = np.searchsorted(ordered, data[finite], side="right") - 1
        ranks[finite, column] = (first + last) / 2 / (len(ordered) - 1)
    return ranks


@dataclass(frozen=True)
class Hyper:
    weight: float
    proxy_scale: float
    hamming_scale: float
    noise: float

    def kernel(self, squared_z: np.ndarray, hamming: np.ndarray) -> np.ndarray:
        return (self.weight * np.exp(-squared_z / (2 * self.proxy_scale ** 2))
                + (1 - self.weight) * np.exp(-hamming / self.hamming_scale))


GRID = [Hyper(*h) for h in itertools.product(PROXY_WEIGHTS, PROXY_SCALES, HAMMING_SCALES, NOISES)
        if not (h[0] == 0.0 and h[1] != PROXY_SCALES[0]) and not (h[0] == 1.0 and h[2] != HAMMING_SCALES[0])]


class PoolGP:
    """A GP over a fixed candidate pool: `z` (pool x proxies) ranks, `codes` (pool x decisions) encodings."""

    def __init__(self, z: np.ndarray, codes: np.ndarray):
        self.z, self.codes = z, codes
        self.positions: list[int] = []                                   # observed, in the order first seen
        self.cross_z = np.zeros((len(z), 0))                             # pool x observed squared distances
        self.cross_h = np.zeros((len(z), 0))                             # pool x observed Hamming distances

    def _observe(self, positions: list[int]) -> None:
        """Add the distance columns of positions not observed before (results only ever grow)."""
        new = [p for p in positions if p not in set(self.positions)]
        if new:
            squared = np.stack([((self.z - self.z[p]) ** 2).sum(axis=1) for p in new], axis=1)
            hamming = np.stack([(self.codes != self.codes[p]).sum(axis=1) for p in new], axis=1).astype(float)
            self.cross_z, self.cross_h = np.hstack([self.cross_z, squared]), np.hstack([self.cross_h, hamming])
            self.positions += new

    def fit(self, positions: list[int], y: np.ndarray) -> None:
        """Choose the hyperparameters for results `y` at pool `positions` and condition on them."""
        self._observe(positions)
        columns = [self.positions.index(p) for p in positions]
        self.used = columns
        self.mean, self.std = float(y.mean()), float(y.std()) or 1.0
        target = (y - self.mean) / self.std
        inner_z, inner_h = self.cross_z[positions][:, columns], self.cross_h[positions][:, columns]
        best = None
        for hyper in GRID:
            matrix = hyper.kernel(inner_z, inner_h) + hyper.noise * np.eye(len(y))
            cholesky = np.linalg.cholesky(matrix)
            alpha = cho_solve((cholesky, True), target)
            likelihood = -0.5 * target @ alpha - np.log(np.diag(cholesky)).sum()
            if best is None or likelihood > best[0] + 1e-12:
                best = (likelihood, hyper, cholesky, alpha)
        _, self.hyper, cholesky, self.alpha = best
        self.whiten = solve_triangular(cholesky, np.eye(len(y)), lower=True).T   # L⁻ᵀ

    def predict(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (in the results' units) at pool positions `candidates`."""
        cross = self.hyper.kernel(self.cross_z[candidates][:, self.used], self.cross_h[candidates][:, self.used])
        variance = np.clip(1.0 - ((cross @ self.whiten) ** 2).sum(axis=1), 1e-12, None)
        return self.mean + self.std * (cross @ self.alpha), self.std * np.sqrt(variance)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    gain = (mean - best) / std
    return std * (gain * ndtr(gain) + np.exp(-0.5 * gain ** 2) / np.sqrt(2 * np.pi))


def first_best(values: np.ndarray, digits: int = 9) -> int:
    """The index of the largest value, the first of those equal to `digits` significant digits: ties
    (identical proxy scores) go to the earliest candidate whatever the last bits of the arithmetic."""
    top = np.max(np.abs(values)) or 1.0
    return int(np.argmax(np.round(values / top, digits)))
