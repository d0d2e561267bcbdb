"""The one mixed op every cell supernet is made of: all candidate ops of one edge, run in either mode.

Single path (weight sharing, `base.Supernet`): `path(x, op)` runs the one named op. α-weighted (the
differentiable strategies, `weighted.WeightedSupernet`): `forward(x, weights, index, edge_weight)` sums
the ops weighted by `weights`, or runs only op `index` (a hard sample), optionally on 1/`partial` of the
channels (PC-DARTS: the other channels bypass the ops and the result is channel-shuffled) and scaled by
the edge's weight β. With `checkpoint` set, the α-weighted mode keeps nothing of the edge but its inputs
for the backward pass and recomputes the edge there (`WeightedSupernet.checkpoint = "edges"`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedOp(nn.Module):
    """One edge: the candidate ops `ops` (built by `make_op(name, channels, stride)`), by name in `self.ops`."""

    def __init__(self, ops: Sequence[str], make_op: Callable[[str, int, int], nn.Module], channels: int,
                 stride: int, partial: int = 1):
        super().__init__()
        self.names, self.stride, self.partial = tuple(ops), stride, partial
        self.ops = nn.ModuleDict({name: make_op(name, channels // partial, stride) for name in self.names})
        self.nonzero = [i for i, name in enumerate(self.names) if name != "none"]  # `none` adds exactly 0: skipped
        self.checkpoint = False

    def path(self, x: torch.Tensor, op: str) -> torch.Tensor:
        """Single-path mode: the op called `op` alone."""
        return self.ops[op](x)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None,
                edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        """α-weighted mode; with `checkpoint` (training, grad on) the whole edge, PC-DARTS's bypass included,
        keeps only its inputs for the backward pass and is recomputed there."""
        if self.checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._weighted, x, weights, index, edge_weight, use_reentrant=False)
        return self._weighted(x, weights, index, edge_weight)

    def _weighted(self, x, weights, index, edge_weight):
        """β (`edge_weight`) scales the op weights and the bypassed channels rather than the edge's output,
        so no full-width product is kept for the backward pass (the bypass is a view of x)."""
        if edge_weight is not None:
            weights = weights * edge_weight
        if self.partial == 1:
            return self._mix_ops(x, weights, index)
        c = x.shape[1] // self.partial
        mixed = self._mix_ops(x[:, :c], weights, index)
        rest = x[:, c:] if self.stride == 1 else F.max_pool2d(x[:, c:], 2, 2, ceil_mode=True)
        if edge_weight is not None:
            rest = rest * edge_weight
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.partial)

    def _mix_ops(self, x, weights, index):
        if index is not None:  # hard sample: run one op, keep every weight in the graph for α's gradient
            return self.ops[self.names[index]](x) * weights[index] + (weights.sum() - weights[index])
        return sum(weights[i] * self.ops[self.names[i]](x) for i in self.nonzero)
