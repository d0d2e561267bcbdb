"""The DARTS search network written the plain way: the in-project reference `bench_darts.py` measures
nasrun's supernet against, in the same run.

It has the structure of the DARTS paper's search network (Liu et al., 2019; model_search.py of the
original code): every op of every edge runs, `none` included (a zero tensor, multiplied by its weight),
each edge's output is the softmax(α)-weighted sum of all eight, tensors stay NCHW, and every activation
is kept for the backward pass (no checkpointing). The ops themselves are nasrun's search-time ops (the
same definitions as the original's OPS table) with torch's own batch norm (`plain_norms`), so the
difference measured is the network's execution, not the maths: nasrun skips `none`, runs channels-last,
rectifies each cell output once for the two cells that read it, holds the weights (α step) or α (weight
step) constant, keeps norm outputs instead of inputs and recomputes depthwise outputs (nasrun/nets/lean.py),
pools with shifted slices (nasrun/nets/pools.py), and recomputes activations in the backward pass
(`strategy.checkpoint`). `bench_darts.plain_step` steps this network as the original code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasrun.nets.darts import reduction_layers
from nasrun.nets.darts_ops import DARTS_OPS, FactorizedReduce, ReLUConvBN
from nasrun.nets.lean import SearchBatchNorm2d
from nasrun.nets.pools import AvgPool2d, MaxPool2d
from nasrun.supernets.darts import PoolNorm, darts_search_op


def plain_norms(module: nn.Module) -> nn.Module:
    """`module` with every SearchBatchNorm2d replaced by torch's nn.BatchNorm2d(affine=False), nasrun's pool
    modules by torch's, and pools run as plain nn.Sequential (nothing recomputed)."""
    for name, child in module.named_children():
        if isinstance(child, SearchBatchNorm2d):
            norm = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, affine=False,
                                  track_running_stats=child.track_running_stats)
            norm.load_state_dict(child.state_dict())
            setattr(module, name, norm.to(child.running_mean.dtype if child.running_mean is not None else None))
        elif type(child) in (MaxPool2d, AvgPool2d):
            torch_class = nn.MaxPool2d if isinstance(child, MaxPool2d) else nn.AvgPool2d
            plain = torch_class.__new__(torch_class)
            plain.__dict__.update(child.__dict__)  # the same settings, torch's forward
            setattr(module, name, plain)
        else:
            plain_norms(child)
    return nn.Sequential(*module) if isinstance(module, PoolNorm) else module


def plain_op(name: str, channels: int, stride: int) -> nn.Module:
    return plain_norms(darts_search_op(name, channels, stride))


class PlainMixedOp(nn.Module):
    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleDict({name: plain_op(name, channels, stride) for name in DARTS_OPS})

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops.values()))


class PlainCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, nodes: int = 4):
        super().__init__()
        self.reduction, self.nodes = reduction, nodes
        self.preprocess0 = plain_norms(FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                                       else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = plain_norms(ReLUConvBN(c_p, c, 1, 1, 0, affine=False))
        self.edges = nn.ModuleList(PlainMixedOp(c, 2 if reduction and source < 2 else 1)
                                   for node in range(nodes) for source in range(node + 2))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states, offset = [self.preprocess0(s0), self.preprocess1(s1)], 0
        for _ in range(self.nodes):
            states.append(sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[-self.nodes:], dim=1)


class PlainDartsNetwork(nn.Module):
    """Stem (3C), `layers` cells with reductions at 1/3 and 2/3, α for normal and reduction cells."""

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, in_channels: int = 3, nodes: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        c_pp, c_p, c, reduction_prev = 3 * C, 3 * C, C, False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            c = c * 2 if reduction else c
            self.cells.append(PlainCell(c_pp, c_p, c, reduction, reduction_prev, nodes))
            c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        edges = sum(node + 2 for node in range(nodes))
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(edges, len(DARTS_OPS)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(edges, len(DARTS_OPS)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        normal, reduce = F.softmax(self.alphas_normal, dim=-1), F.softmax(self.alphas_reduce, dim=-1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.pool(s1).flatten(1))
