"""The one mixed op every cell supernet is made of: all candidate ops of one edge, run in either mode.

Single path (weight sharing, `base.Supernet`): `path(x, op)` runs the one named op. α-weighted (the
differentiable strategies, `weighted.WeightedSupernet`): `forward(x, weights, index, edge_weight)` sums
the ops weighted by `weights`, or runs only op `index` (a hard sample), optionally on 1/`partial` of the
channels (PC-DARTS: the other channels bypass the ops and the result is channel-shuffled) and scaled by
the edge's weight β. The ops that begin with ReLU (`after_relu`: DARTS's convolutions, the strided
skip) share one rectified copy of the edge's input; in a training pass the separable and dilated convs
keep the edge's input instead, and recompute the rectified copy in the backward pass
(`nasrun.nets.lean`). With `checkpoint` set, the α-weighted mode keeps nothing of the edge but its
inputs for the backward pass and recomputes the edge there
(`WeightedSupernet.checkpoint = "edges"`), its batch norms' running statistics left as the first pass
set them (`statistics_kept`), so recomputation changes no value of the search.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from nasrun.nets.lean import Rectified, SharedRelu, keeps_less


@contextlib.contextmanager
def statistics_kept(module: nn.Module):
    """Within the block the batch norms of `module` normalise as in training but leave their running
    statistics (and batch count) as they were: momentum 0 keeps the running values bit for bit."""
    norms = [(m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for norm, _, _ in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, momentum, count in norms:
            norm.momentum = momentum
            if count is not None:
                norm.num_batches_tracked.copy_(count)


def recomputed(module: nn.Module, function: Callable, *inputs):
    """`function(*inputs)` (a forward of `module`) keeping only its inputs for the backward pass, which
    recomputes it under `statistics_kept(module)`."""
    return checkpoint(function, *inputs, use_reentrant=False,
                      context_fn=lambda: (contextlib.nullcontext(), statistics_kept(module)))


def shuffled(mixed: torch.Tensor, rest: torch.Tensor, groups: int, scale: torch.Tensor | None = None) -> torch.Tensor:
    """PC-DARTS's channel shuffle of `cat([mixed, rest * scale])` in `groups` groups (output channel
    j * groups + g is channel j of group g), written straight into one new tensor: the concatenation and
    the reshuffled copy of it are never made."""
    n, c, h, w = mixed.shape
    layout = torch.channels_last if mixed.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((n, c * groups, h, w), dtype=mixed.dtype, device=mixed.device, memory_format=layout)
    grouped = out.view(n, c, groups, h, w)
    grouped[:, :, 0].copy_(mixed)
    grouped[:, :, 1:].copy_((rest if scale is None else rest * scale).view(n, groups - 1, c, h, w).transpose(1, 2))
    return out


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
            return recomputed(self, self._weighted, x, weights, index, edge_weight)
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
        return shuffled(mixed, rest, self.partial, edge_weight)

    def _mix_ops(self, x, weights, index):
        if index is not None:  # hard sample: run one op, keep every weight in the graph for α's gradient
            return self.ops[self.names[index]](x) * weights[index] + (weights.sum() - weights[index])
        ops = [self.ops[self.names[i]] for i in self.nonzero]
        lean = keeps_less(x, self.training)  # convs keep x, not relu(x), which they share (nasrun.nets.lean)
        of_source = [lean and hasattr(op, "after_relu_of") for op in ops]
        shared_relu = Rectified.apply(x) if any(of_source) else None
        recomputed_relu = SharedRelu(sum(of_source)) if shared_relu is not None else None
        rectified = F.relu(x) if any(hasattr(op, "after_relu") and not by_source
                                     for op, by_source in zip(ops, of_source)) else None

        def run(op: nn.Module, by_source: bool) -> torch.Tensor:
            if by_source:
                return op.after_relu_of(x, shared_relu, recomputed_relu)
            return op.after_relu(rectified) if hasattr(op, "after_relu") else op(x)

        total = None  # the first product, then the others added into it (addition keeps nothing for backward)
        for i, op, by_source in zip(self.nonzero, ops, of_source):
            product = weights[i] * run(op, by_source)
            total = product if total is None else total.add_(product)
        return total
