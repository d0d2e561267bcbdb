"""The NB201 cell space's supernets. Single-path (`NB201Supernet`, for `estimator=weight_sharing`): every
edge of every cell holds all five ops; one op per edge is active (the same cell in every stage, as in the
benchmark); stem, reduction blocks and head are shared. α-weighted (`NB201WeightedSupernet`, at the end,
for the differentiable strategies): every op runs, weighted by the edge's α."""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from nasrun.nets.nb201 import NB201_EDGES, NB201_OPS, format_arch, nb201_backbone, nb201_op, parse_arch
from nasrun.spaces.nb201 import NB201Space
from nasrun.supernets.base import Supernet, register_supernet
from nasrun.supernets.mixed import MixedOp
from nasrun.supernets.weighted import (SupernetSize, WeightedSupernet, Weighting, node_sum,
                                       register_weighted_supernet)

CELL_PARAM = re.compile(r"^cells\.(\d+)\.edges\.(\d+)\.(.+)$")


def nb201_edge_op(name: str, channels: int, stride: int) -> nn.Module:
    """A cell edge's op (cells keep their resolution: `stride` is always 1)."""
    return nb201_op(name, channels)


class MixedCell(nn.Module):
    """A cell whose edges are `MixedOp`s holding every op; `ops` (one name per edge) selects the active ones."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(NB201_OPS, nb201_edge_op, channels, 1) for _ in NB201_EDGES)
        self.ops: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes, position = [x], 0
        for target in range(1, 4):
            nodes.append(sum(self.edges[position + s].path(nodes[s], self.ops[position + s]) for s in range(target)))
            position += target
        return nodes[3]


@register_supernet("nb201")
class NB201Supernet(Supernet):
    def __init__(self, space: NB201Space, input_shape: Sequence[int], num_classes: int):
        super().__init__(space, input_shape, num_classes)
        self.stem, self.cells, channels = nb201_backbone(input_shape[0], space.C, space.N, MixedCell)
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(channels, num_classes))

    def set_active(self, arch: str) -> None:
        super().set_active(arch)
        ops = parse_arch(self.active)
        for block in self.cells:
            if isinstance(block, MixedCell):
                block.ops = ops

    def forward_active(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.cells:
            x = block(x)
        return self.head(x)

    @torch.no_grad()
    def extract(self, arch: str) -> nn.Module:
        """The benchmark network for `arch`; its cell edge `e` takes the weights of op `arch[e]` here."""
        arch = self.space.validate(arch)
        ops = parse_arch(arch)
        net = self.space.build(arch, self.input_shape, self.num_classes)
        source = self.state_dict()
        state = {}
        for name in net.state_dict():
            match = CELL_PARAM.match(name)
            if match:
                block, edge, rest = match.groups()
                state[name] = source[f"cells.{block}.edges.{edge}.ops.{ops[int(edge)]}.{rest}"]
            else:
                state[name] = source[name]
        net.load_state_dict(state)
        return net.to(self.head[-1].weight.device)

    def largest(self) -> str:
        """No elastic dimensions here, so sizes are parameter counts: every edge a 3x3 conv (the most)."""
        return self.space.decode([NB201_OPS.index("nor_conv_3x3")] * len(NB201_EDGES))

    def smallest(self) -> str:
        """Every edge a 1x1 conv: the fewest parameters among subnets that have weights on every edge
        (the parameter-free ops have nothing to train; the random subnets cover them)."""
        return self.space.decode([NB201_OPS.index("nor_conv_1x1")] * len(NB201_EDGES))


# --- the α-weighted supernet (DARTS, PC-DARTS, GDAS) ----------------------------------------------------------------------------------
class NB201SearchCell(nn.Module):
    kind = "cell"

    def __init__(self, channels: int, partial: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(NB201_OPS, nb201_edge_op, channels, 1, partial) for _ in NB201_EDGES)

    def forward(self, x, weights, index, edge_weights):
        nodes, edge = [x], 0
        for _ in range(3):
            total, edge = node_sum(self.edges, nodes, edge, weights, index, edge_weights)
            nodes.append(total)
        return nodes[3]


@register_weighted_supernet("nb201")
class NB201WeightedSupernet(WeightedSupernet):
    """The NB201 network (C, N cells per stage) with mixed-op cells sharing one α (6 edges × 5 ops)."""

    cell_types = ("cell",)
    ops = NB201_OPS
    node_edges = [slice(0, 1), slice(1, 3), slice(3, 6)]

    def __init__(self, input_shape: Sequence[int], num_classes: int, weighting: Weighting, C: int = 16, N: int = 5,
                 checkpoint: str = "none"):
        super().__init__(weighting, checkpoint)
        self.stem, self.cells, channels = nb201_backbone(input_shape[0], C, N,
                                                         lambda c: NB201SearchCell(c, weighting.partial))
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(channels, num_classes))
        self._make_arch_parameters(6)

    @classmethod
    def for_search(cls, space: NB201Space, input_shape, num_classes: int, weighting: Weighting,
                   size: SupernetSize) -> "NB201WeightedSupernet":
        return cls(input_shape, num_classes, weighting, size.C, size.N, size.checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        weights = self.cell_weights("cell")
        for block in self.cells:
            x = self.run_cell(block, x, *weights) if isinstance(block, NB201SearchCell) else block(x)
        return self.head(x)

    def derive(self) -> str:
        """The strongest op on every edge (`none` included, as the benchmark's DARTS baselines derive)."""
        return format_arch([NB201_OPS[i] for i in self.strengths("cell").argmax(dim=1).tolist()])

    def collapse(self, arch: str) -> dict[str, int]:
        ops = parse_arch(arch)
        return {"param_free_ops": sum(op in ("none", "skip_connect", "avg_pool_3x3") for op in ops),
                "skip_connects": ops.count("skip_connect")}
