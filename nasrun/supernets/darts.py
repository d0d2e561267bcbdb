"""The DARTS cell space's supernets: single-path weight sharing over genotypes (`DartsSupernet`, for
`estimator=weight_sharing`), and the α-weighted search network (`DartsWeightedSupernet`, at the end, for
the differentiable strategies).

Each intermediate node j of a cell picks two (op, input) pairs among its inputs 0..j-1, so every cell
holds a `MixedOp` (one candidate module per op of the space) for every possible edge (node j, input i),
built by `darts_op` (stride 2 on a reduction cell's edges from its inputs, as in the evaluation network). The
active path is a genotype: only its chosen (op, input) pairs are computed; a node that picks the same
(op, input) twice uses that one module twice (the extracted network gets two copies of its weights).
Stem, preprocessing, reduction layout and classifier are the evaluation network's (`cell_plan`,
`make_stem`, `FactorizedReduce`/`ReLUConvBN` from `nasrun.nets.darts`), with affine batch norm so the
extracted network computes exactly what the path computes.

The supernet has no auxiliary head and no drop-path: the extracted network (built by the space, with
its `auxiliary` and `drop_path_prob` options) keeps a freshly initialised auxiliary head, which
evaluation mode never uses. Every path concatenates all intermediate nodes (in any order): the cell's
output width is fixed, so a genotype concatenating fewer nodes is refused.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch
from torch import nn

from nasrun.errors import InvalidArchitecture
from nasrun.nets.darts import CELL_TYPES, cell_plan, make_stem, reduction_layers
from nasrun.nets.darts_ops import PARAMETER_FREE_OPS, FactorizedReduce, ReLUConvBN, darts_op
from nasrun.nets.lean import batch_norm
from nasrun.nets.pools import fast_pool
from nasrun.spaces.darts import DartsSpace
from nasrun.supernets.base import Supernet, register_supernet
from nasrun.supernets.mixed import MixedOp
from nasrun.supernets.weighted import (SupernetSize, WeightedSupernet, Weighting, node_sum,
                                       register_weighted_supernet)

CELL_OP_PARAM = re.compile(r"^cells\.(\d+)\.ops\.(\d+)\.(.+)$")


class MixedCell(nn.Module):
    """A cell holding every op on every edge; `pairs` and `concat` (the genotype's) select the path."""

    def __init__(self, ops: Sequence[str], nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.edges = nn.ModuleList(
            nn.ModuleList(MixedOp(ops, darts_op, c, 2 if reduction and source < 2 else 1) for source in range(2 + node))
            for node in range(nodes))
        self.pairs: list = []
        self.concat: list = []

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node, first in enumerate(range(0, len(self.pairs), 2)):
            states.append(sum(self.edges[node][source].path(states[source], op)
                              for op, source in self.pairs[first:first + 2]))
        return torch.cat([states[i] for i in self.concat], dim=1)


@register_supernet("darts")
class DartsSupernet(Supernet):
    def __init__(self, space: DartsSpace, input_shape: Sequence[int], num_classes: int):
        super().__init__(space, input_shape, num_classes)
        imagenet = space.stem == "imagenet"
        self.stem0, self.stem1, c_stem = make_stem(input_shape[0], space.C, 3, imagenet)
        plan = list(cell_plan(space.layers, space.C, c_stem, imagenet, {False: space.nodes, True: space.nodes}))
        self.cells = nn.ModuleList(MixedCell(space.ops, space.nodes, c_pp, c_p, c, reduction, reduction_prev)
                                   for reduction, reduction_prev, c_pp, c_p, c in plan)
        self.reductions = [reduction for reduction, *_ in plan]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.nodes * plan[-1][-1], num_classes)

    def set_active(self, arch: Any) -> None:
        genotype = self.space.validate(arch)
        nodes = list(range(2, 2 + self.space.nodes))
        for cell in CELL_TYPES:
            if sorted(genotype[f"{cell}_concat"]) != nodes:
                raise InvalidArchitecture(f"darts weight sharing: '{cell}_concat' must list every intermediate "
                                          f"node {nodes}, got {genotype[f'{cell}_concat']}")
        super().set_active(genotype)
        for block, reduction in zip(self.cells, self.reductions):
            kind = CELL_TYPES[reduction]
            block.pairs, block.concat = self.active[kind], self.active[f"{kind}_concat"]

    def forward_active(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(s1).flatten(1))

    @torch.no_grad()
    def extract(self, arch: Any) -> nn.Module:
        """The evaluation network of `arch`; its pair p of cell k takes the weights of that pair's
        (node, input, op) candidate here. Its auxiliary head, if any, stays freshly initialised."""
        genotype = self.space.validate(arch)
        net = self.space.build(genotype, self.input_shape, self.num_classes)
        source = self.state_dict()
        state = net.state_dict()
        for name in state:
            match = CELL_OP_PARAM.match(name)
            if match:
                block, position, rest = int(match[1]), int(match[2]), match[3]
                op, input_node = genotype[CELL_TYPES[self.reductions[block]]][position]
                state[name] = source[f"cells.{block}.edges.{position // 2}.{input_node}.ops.{op}.{rest}"]
            elif not name.startswith("auxiliary_head."):
                state[name] = source[name]
        net.load_state_dict(state)
        return net.to(self.classifier.weight.device)

    def largest(self) -> dict:
        """Every pair the op with the most parameters (sep_conv_5x5 of the DARTS ops), node j taking
        inputs j-1 and j-2: the deepest cell of the heaviest op."""
        return self.uniform_genotype(max(self.space.ops, key=self.op_parameters),
                                     lambda node: (node - 1, node - 2))

    def smallest(self) -> dict:
        """Every pair the op with the fewest parameters among those that have any (dil_conv_3x3 of the
        DARTS ops; parameter-free ops have nothing to train, the random paths cover them), every node
        taking inputs 0 and 1: the shallowest cell."""
        weighted = [op for op in self.space.ops if self.op_parameters(op) > 0] or list(self.space.ops)
        return self.uniform_genotype(min(weighted, key=self.op_parameters), lambda node: (0, 1))

    def op_parameters(self, op: str) -> int:
        return sum(p.numel() for p in darts_op(op, self.space.C, 1).parameters())

    def uniform_genotype(self, op: str, inputs) -> dict:
        genotype = {}
        for cell in CELL_TYPES:
            genotype[cell] = [[op, source] for node in range(2, 2 + self.space.nodes) for source in inputs(node)]
            genotype[f"{cell}_concat"] = list(range(2, 2 + self.space.nodes))
        return self.space.validate(genotype)


# --- the α-weighted supernet (DARTS, PC-DARTS, GDAS) ----------------------------------------------------------------------------------
class PoolNorm(nn.Sequential):
    """A pool, then an affine-free batch norm (which keeps its output, not the pool's). DARTS's 3x3 pools
    run as `nasrun.nets.pools.fast_pool`: faster than torch's, and keeping only their input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool, norm = self
        pooled = fast_pool(pool, x)
        return norm(pool(x) if pooled is None else pooled)


def darts_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """Search-time op: affine-free batch norm, and a BN after pools, as in the DARTS search."""
    op = darts_op(name, channels, stride, affine=False)
    if "pool" in name:
        return PoolNorm(op, batch_norm(channels, affine=False))
    return op


class DartsSearchCell(nn.Module):
    def __init__(self, ops, nodes: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 partial: int):
        super().__init__()
        self.kind, self.nodes = ("reduce" if reduction else "normal"), nodes
        self.preprocess0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev \
            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(ops, darts_search_op, c, 2 if reduction and source < 2 else 1, partial)
            for node in range(nodes) for source in range(node + 2))

    def forward(self, s0, s1, weights, index, edge_weights):
        """`s0`, `s1`: the two previous cells' outputs, already passed through the ReLU that begins each
        preprocessing (the network applies it once per output, see `DartsWeightedSupernet.forward`)."""
        states, edge = [self.preprocess0.after_relu(s0), self.preprocess1.after_relu(s1)], 0
        for _ in range(self.nodes):
            total, edge = node_sum(self.edges, states, edge, weights, index, edge_weights)
            states.append(total)
        return torch.cat(states[2:], dim=1)


@register_weighted_supernet("darts")
class DartsWeightedSupernet(WeightedSupernet):
    """The DARTS search network: stem (3C), `layers` cells with reductions at 1/3 and 2/3, all intermediate
    nodes concatenated. `ops` include `none`; the derived genotype only uses `search_ops`."""

    cell_types = ("normal", "reduce")

    def __init__(self, input_shape: Sequence[int], num_classes: int, weighting: Weighting, C: int = 16,
                 layers: int = 8, nodes: int = 4, search_ops: Sequence[str] = (), checkpoint: str = "none"):
        super().__init__(weighting, checkpoint)
        self.search_ops = tuple(search_ops)
        self.ops = ("none",) + self.search_ops
        self.nodes = nodes
        self.node_edges = []
        start = 0
        for node in range(nodes):
            self.node_edges.append(slice(start, start + node + 2))
            start += node + 2
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        c_pp, c_p, c, reduction_prev = 3 * C, 3 * C, C, False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            c = c * 2 if reduction else c
            self.cells.append(DartsSearchCell(self.ops, nodes, c_pp, c_p, c, reduction, reduction_prev,
                                              weighting.partial))
            c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self._make_arch_parameters(start)

    @classmethod
    def for_search(cls, space: DartsSpace, input_shape, num_classes: int, weighting: Weighting,
                   size: SupernetSize) -> "DartsWeightedSupernet":
        return cls(input_shape, num_classes, weighting, size.C, size.layers, space.nodes, space.ops,
                   size.checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each cell's output feeds the next two cells' preprocessing, both of which begin with ReLU: it is
        applied once, in place (neither BN nor concatenation keeps its output for the backward pass), so
        one rectified copy is kept instead of two; the last cell's output goes to the classifier as is."""
        s0 = s1 = self.stem(x).relu_()
        weights = {name: self.cell_weights(name) for name in self.cell_types}
        for position, cell in enumerate(self.cells):
            out = self.run_cell(cell, s0, s1, *weights[cell.kind])
            s0, s1 = s1, out if position == len(self.cells) - 1 else out.relu_()
        return self.classifier(self.pool(s1).flatten(1))

    def derive(self) -> dict:
        """Per node, the two strongest incoming edges (by their best non-`none` op) and that op."""
        genotype = {}
        for cell in self.cell_types:
            strengths = self.strengths(cell)[:, 1:]  # column 0 is `none`
            pairs = []
            for edges in self.node_edges:
                best, op = strengths[edges].max(dim=1)
                top = sorted(range(len(best)), key=lambda j: -best[j].item())[:2]
                pairs += [[self.search_ops[op[j].item()], j] for j in top]
            genotype[cell] = pairs
            genotype[f"{cell}_concat"] = list(range(2, 2 + self.nodes))
        return genotype

    def collapse(self, arch: dict) -> dict[str, int]:
        return {"param_free_ops": sum(op in PARAMETER_FREE_OPS for cell in self.cell_types for op, _ in arch[cell]),
                "skip_connects": sum(op == "skip_connect" for op, _ in arch["normal"])}
