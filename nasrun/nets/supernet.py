"""Weight-sharing supernets for differentiable search, one code path for the DARTS and NB201 cells.

Every edge of a cell is a `MixedOp` over the candidate ops. How an edge weighs its ops is pluggable
(`Weighting`): a softmax over α (DARTS), the same on a 1/k slice of the channels plus a softmax over the
edges entering each node (PC-DARTS), or a hard Gumbel-softmax sample that runs one op (GDAS).
A MixedOp can also be forced to run one op (`active = index`), for single-path weight sharing.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from nasrun.errors import NasrunError
from nasrun.nets.darts import reduction_layers
from nasrun.nets.darts_ops import PARAMETER_FREE_OPS, FactorizedReduce, ReLUConvBN, darts_op
from nasrun.nets.nb201 import NB201_OPS, format_arch, nb201_backbone, nb201_op


# --- edge weightings ---------------------------------------------------------------------------------
class Weighting:
    """DARTS: every op of an edge runs, weighted by softmax(α)."""

    partial = 1                  # ops see 1/partial of the channels (PC-DARTS)
    edge_normalisation = False   # per-node softmax over incoming edges (β, PC-DARTS)

    def op_weights(self, alpha: torch.Tensor) -> tuple[torch.Tensor, list[int] | None]:
        """Weights (edges × ops) and, for hard sampling, the one op index per edge that runs."""
        return F.softmax(alpha, dim=-1), None


class PartialChannelWeighting(Weighting):
    """PC-DARTS: mixed ops on 1/k of the channels (the rest bypass), with edge normalisation."""

    edge_normalisation = True

    def __init__(self, k: int = 4):
        self.partial = int(k)


class GumbelWeighting(Weighting):
    """GDAS: one op per edge sampled by hard Gumbel-softmax (straight-through gradient to α)."""

    def __init__(self, tau: float = 10.0):
        self.tau = float(tau)

    def op_weights(self, alpha: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        if not torch.isfinite(alpha).all():
            raise NasrunError("gdas: the architecture weights α are not finite; the search diverged")
        for _ in range(100):  # resample the rare draw whose exponential underflows to inf / nan
            gumbels = -torch.empty_like(alpha).exponential_().log()
            probs = F.softmax((F.log_softmax(alpha, dim=-1) + gumbels) / self.tau, dim=-1)
            if torch.isfinite(probs).all():
                break
        else:
            raise NasrunError(f"gdas: 100 Gumbel draws at tau={self.tau:g} all overflowed; raise strategy.tau_min")
        index = probs.argmax(dim=-1)
        hard = torch.zeros_like(probs).scatter_(-1, index[:, None], 1.0)
        return hard - probs.detach() + probs, index.tolist()


# --- mixed op --------------------------------------------------------------------------------------
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedOp(nn.Module):
    """One edge: all candidate ops, combined by the weights the cell passes in."""

    def __init__(self, ops: Sequence[str], make_op: Callable[[str, int, int], nn.Module], channels: int,
                 stride: int, partial: int = 1):
        super().__init__()
        self.stride, self.partial = stride, partial
        self.ops = nn.ModuleList(make_op(name, channels // partial, stride) for name in ops)
        self.nonzero = [i for i, name in enumerate(ops) if name != "none"]  # `none` adds exactly 0: skipped
        self.active: int | None = None   # when set, only this op runs (single-path weight sharing)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, index: int | None = None):
        if self.partial == 1:
            return self._mix(x, weights, index)
        c = x.shape[1] // self.partial
        mixed = self._mix(x[:, :c], weights, index)
        rest = x[:, c:] if self.stride == 1 else F.max_pool2d(x[:, c:], 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.partial)

    def _mix(self, x, weights, index):
        if self.active is not None:
            return self.ops[self.active](x)
        if index is not None:  # hard sample: run one op, keep every weight in the graph for α's gradient
            return self.ops[index](x) * weights[index] + (weights.sum() - weights[index])
        return sum(weights[i] * self.ops[i](x) for i in self.nonzero)


# --- the supernet base --------------------------------------------------------------------------------
class Supernet(nn.Module):
    """Cells of mixed ops plus architecture parameters α (and β) per cell type.

    Subclasses set `ops`, `cell_types`, `node_edges` (per node, the slice of edge indices entering it)
    and implement `derive()` and `collapse()`.
    """

    ops: tuple
    cell_types: tuple

    def __init__(self, weighting: Weighting, checkpoint_cells: bool = False):
        super().__init__()
        self.weighting = weighting
        self.checkpoint_cells = checkpoint_cells

    def run_cell(self, cell: nn.Module, *inputs):
        """With `checkpoint_cells`, keep only each cell's inputs and recompute its activations in the
        backward pass: a fraction of the memory for about one more forward pass. (The recomputation
        updates the affine-free BN running statistics a second time; training-mode outputs and every
        gradient are unchanged.)"""
        if self.checkpoint_cells and self.training and torch.is_grad_enabled():
            return checkpoint(cell, *inputs, use_reentrant=False)
        return cell(*inputs)

    def _make_arch_parameters(self, edges: int) -> None:
        self.alphas = nn.ParameterDict({name: nn.Parameter(1e-3 * torch.randn(edges, len(self.ops)))
                                        for name in self.cell_types})
        self.betas = nn.ParameterDict({name: nn.Parameter(1e-3 * torch.randn(edges)) for name in self.cell_types}) \
            if self.weighting.edge_normalisation else None

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values()) + (list(self.betas.values()) if self.betas is not None else [])

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in arch]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    def edge_weights(self, cell: str) -> torch.Tensor | None:
        """Per node, softmax(β) over the edges entering it (PC-DARTS); None without edge normalisation."""
        if self.betas is None:
            return None
        beta = self.betas[cell]
        return torch.cat([F.softmax(beta[edges], dim=-1) for edges in self.node_edges])

    def cell_weights(self, cell: str) -> tuple:
        weights, index = self.weighting.op_weights(self.alphas[cell])
        return weights, index, self.edge_weights(cell)

    @torch.no_grad()
    def op_probabilities(self) -> dict[str, list[list[float]]]:
        """softmax(α) per cell type, edge by edge (what alphas.jsonl records)."""
        return {name: F.softmax(alpha, dim=-1).cpu().tolist() for name, alpha in self.alphas.items()}

    @torch.no_grad()
    def edge_probabilities(self) -> dict[str, list[float]] | None:
        return None if self.betas is None else {name: self.edge_weights(name).cpu().tolist() for name in self.betas}

    @torch.no_grad()
    def strengths(self, cell: str) -> torch.Tensor:
        """softmax(α), scaled by the edge weights where β exists: what derivation ranks."""
        weights = F.softmax(self.alphas[cell], dim=-1)
        edges = self.edge_weights(cell)
        return weights if edges is None else weights * edges[:, None]

    def set_active(self, cell_choice: dict[str, list[int]] | None) -> None:
        """Force one op per edge (cell type → op index per edge); None restores the weighted mixture."""
        for module in self.modules():
            if isinstance(module, (DartsSearchCell, NB201SearchCell)):
                for edge, mixed in enumerate(module.edges):
                    mixed.active = None if cell_choice is None else cell_choice[module.kind][edge]

    def derive(self):
        """The discrete architecture of the space's kind that the current α selects (per subclass)."""
        raise NotImplementedError

    def collapse(self, arch) -> dict[str, int]:
        """Counts of parameter-free ops and skip-connections in `arch` (per subclass)."""
        raise NotImplementedError

def node_sum(edges, states, edge, weights, index, edge_weights):
    """One intermediate node: the (edge-weighted) sum of the mixed ops from every earlier state, which
    are edges `edge`, `edge+1`, ...; returns the sum and the index of the next edge."""
    total = 0
    for h in states:
        out = edges[edge](h, weights[edge], None if index is None else index[edge])
        total = total + (out if edge_weights is None else edge_weights[edge] * out)
        edge += 1
    return total, edge


# --- DARTS cell space ----------------------------------------------------------------------------------
def darts_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """Search-time op: affine-free batch norm, and a BN after pools, as in the DARTS search."""
    op = darts_op(name, channels, stride, affine=False)
    if "pool" in name:
        return nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
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
        states, edge = [self.preprocess0(s0), self.preprocess1(s1)], 0
        for _ in range(self.nodes):
            total, edge = node_sum(self.edges, states, edge, weights, index, edge_weights)
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(Supernet):
    """The DARTS search network: stem (3C), `layers` cells with reductions at 1/3 and 2/3, all intermediate
    nodes concatenated. `ops` include `none`; the derived genotype only uses `search_ops`."""

    cell_types = ("normal", "reduce")

    def __init__(self, input_shape: Sequence[int], num_classes: int, weighting: Weighting, C: int = 16,
                 layers: int = 8, nodes: int = 4, search_ops: Sequence[str] = (), checkpoint_cells: bool = False):
        super().__init__(weighting, checkpoint_cells)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        weights = {name: self.cell_weights(name) for name in self.cell_types}
        for cell in self.cells:
            s0, s1 = s1, self.run_cell(cell, s0, s1, *weights[cell.kind])
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


# --- NB201 cell space ----------------------------------------------------------------------------------
class NB201SearchCell(nn.Module):
    kind = "cell"

    def __init__(self, channels: int, partial: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(NB201_OPS, lambda name, c, _: nb201_op(name, c), channels, 1, partial)
                                   for _ in range(6))

    def forward(self, x, weights, index, edge_weights):
        nodes, edge = [x], 0
        for _ in range(3):
            total, edge = node_sum(self.edges, nodes, edge, weights, index, edge_weights)
            nodes.append(total)
        return nodes[3]


class NB201Supernet(Supernet):
    """The NB201 network (C, N cells per stage) with mixed-op cells sharing one α (6 edges × 5 ops)."""

    cell_types = ("cell",)
    ops = NB201_OPS
    node_edges = [slice(0, 1), slice(1, 3), slice(3, 6)]

    def __init__(self, input_shape: Sequence[int], num_classes: int, weighting: Weighting, C: int = 16, N: int = 5,
                 checkpoint_cells: bool = False):
        super().__init__(weighting, checkpoint_cells)
        self.stem, self.cells, channels = nb201_backbone(input_shape[0], C, N,
                                                         lambda c: NB201SearchCell(c, weighting.partial))
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(channels, num_classes))
        self._make_arch_parameters(6)

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
        from nasrun.nets.nb201 import parse_arch

        ops = parse_arch(arch)
        return {"param_free_ops": sum(op in ("none", "skip_connect", "avg_pool_3x3") for op in ops),
                "skip_connects": ops.count("skip_connect")}
