"""The NAS-Bench-201 network, built as the benchmark builds it: a 3x3 conv stem, three stages of N cells
(C, 2C, 4C channels) joined by residual reduction blocks, BN-ReLU, global pool, linear classifier.

A cell has 4 nodes; node j sums op(i→j)(node i) over i < j; node 3 is the output. The architecture is
the benchmark's string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nasrun.errors import InvalidArchitecture
from nasrun.nets import register
from nasrun.nets.nb201_arch import NB201_EDGES, NB201_OPS, format_arch, parse_arch  # noqa: F401 (re-exported)
from nasrun.nets.pools import AvgPool2d


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def nb201_op(op: str, channels: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if op == "avg_pool_3x3":
        return AvgPool2d(3, 1, 1, count_include_pad=False)  # nn.AvgPool2d, faster on CPU (nasrun.nets.pools)
    raise InvalidArchitecture(f"nb201: unknown op '{op}'")


class NB201Cell(nn.Module):
    def __init__(self, ops: Sequence[str], channels: int):
        super().__init__()
        self.edges = nn.ModuleList(nb201_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        position = 0
        for target in range(1, 4):
            nodes.append(sum(self.edges[position + s](nodes[s]) for s in range(target)))
            position += target
        return nodes[3]


class ResidualReduction(nn.Module):
    """The benchmark's reduction block: a stride-2 basic residual block with an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        # ceil_mode keeps odd resolutions in step with the stride-2 conv branch (same result on even sizes)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def nb201_backbone(input_channels: int, C: int, N: int, make_cell) -> tuple[nn.Module, nn.ModuleList, int]:
    """Stem and the list of cells / reduction blocks; `make_cell(channels)` builds one cell."""
    stem = nn.Sequential(nn.Conv2d(input_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
    blocks, channels = nn.ModuleList(), C
    for stage in range(3):
        if stage > 0:
            blocks.append(ResidualReduction(channels, channels * 2))
            channels *= 2
        for _ in range(N):
            blocks.append(make_cell(channels))
    return stem, blocks, channels


@register("nb201")
class NB201Net(nn.Module):
    def __init__(self, arch: str, input_shape: Sequence[int], num_classes: int, C: int = 16, N: int = 5):
        super().__init__()
        ops = parse_arch(arch)
        self.stem, self.cells, channels = nb201_backbone(input_shape[0], C, N, lambda c: NB201Cell(ops, c))
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)
