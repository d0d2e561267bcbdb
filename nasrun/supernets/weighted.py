"""α-weighted supernets, the mode the differentiable strategies (DARTS, PC-DARTS, GDAS) search with.

Every edge of a cell is a `mixed.MixedOp` over the candidate ops, in its α-weighted mode. How an edge weighs its ops is pluggable
(`Weighting`): a softmax over α (DARTS), the same on a 1/k slice of the channels plus a softmax over the
edges entering each node (PC-DARTS), or a hard Gumbel-softmax sample that runs one op (GDAS).
A space's α-weighted supernet lives in that space's file of this package, next to its single-path
supernet, registered with `@register_weighted_supernet("<space name>")`; `build_weighted_supernet`
dispatches on `space.name`, so a strategy never branches on the space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasrun.errors import ConfigError, NasrunError
from nasrun.supernets.base import import_supernets
from nasrun.supernets.mixed import MixedOp, recomputed

CHECKPOINT_MODES = ("none", "cells", "edges")


def check_checkpoint_mode(mode: str) -> str:
    if mode not in CHECKPOINT_MODES:
        raise ConfigError(f"strategy.checkpoint must be auto or one of {', '.join(CHECKPOINT_MODES)}, got {mode!r}")
    return mode


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


# --- the supernet base --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SupernetSize:
    """The strategy's supernet settings; each space's supernet reads the ones it has."""

    C: int = 16                    # channels of the first cells
    layers: int = 8                # cells (DARTS space)
    N: int = 5                     # cells per stage (NB201 space)
    checkpoint: str = "none"       # none | cells | edges (see WeightedSupernet.checkpoint)


WEIGHTED_SUPERNETS: dict[str, type] = {}


def register_weighted_supernet(space_name: str):
    """Class decorator: the α-weighted supernet of the space called `space_name`. The class provides
    `for_search(space, input_shape, num_classes, weighting, size)`."""

    def wrap(cls):
        WEIGHTED_SUPERNETS[space_name] = cls
        return cls

    return wrap


def build_weighted_supernet(space, input_shape, num_classes: int, weighting: Weighting, size: SupernetSize,
                            strategy: str = "darts") -> WeightedSupernet:
    """The α-weighted supernet of `space` (freshly initialised from torch's current RNG)."""
    import_supernets()
    if space.name not in WEIGHTED_SUPERNETS:
        raise ConfigError(f"strategy={strategy} searches cell spaces (search_space="
                          f"{' or '.join(sorted(WEIGHTED_SUPERNETS))}), not '{space.name}'")
    return WEIGHTED_SUPERNETS[space.name].for_search(space, tuple(input_shape), int(num_classes), weighting, size)


class WeightedSupernet(nn.Module):
    """Cells of mixed ops plus architecture parameters α (and β) per cell type.

    Subclasses set `ops`, `cell_types`, `node_edges` (per node, the slice of edge indices entering it),
    call `_make_arch_parameters` last in `__init__`, and implement `derive()` and `collapse()`.

    `checkpoint` trades compute for memory in training mode: "cells" keeps only each cell's inputs and
    recomputes the cell's activations in the backward pass; "edges" keeps each edge's inputs (a cell's
    states) and recomputes the edge's ops when its gradient is needed. Either costs about one more forward
    pass and changes no value: recomputation leaves the batch norms' running statistics alone
    (`mixed.statistics_kept`). "auto" (the strategies' default) is resolved by `choose_checkpoint`.
    """

    ops: tuple
    cell_types: tuple

    def __init__(self, weighting: Weighting, checkpoint: str = "none"):
        super().__init__()
        self.weighting = weighting
        self._checkpoint = checkpoint

    @property
    def checkpoint(self) -> str:
        return self._checkpoint

    @checkpoint.setter
    def checkpoint(self, mode: str) -> None:
        self._checkpoint = check_checkpoint_mode(mode)
        for module in self.modules():
            if isinstance(module, MixedOp):
                module.checkpoint = mode == "edges"

    def run_cell(self, cell: nn.Module, *inputs):
        """The cell's output, its activations recomputed in the backward pass with `checkpoint` "cells"."""
        if self._checkpoint == "cells" and self.training and torch.is_grad_enabled():
            return recomputed(cell, cell, *inputs)
        return cell(*inputs)

    def _make_arch_parameters(self, edges: int) -> None:
        """α (and β) for `edges` edges per cell type; also applies `checkpoint` to the mixed ops now built."""
        self.checkpoint = self._checkpoint
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

    def derive(self):
        """The discrete architecture of the space's kind that the current α selects (per subclass)."""
        raise NotImplementedError

    def collapse(self, arch) -> dict[str, int]:
        """Counts of parameter-free ops and skip-connections in `arch` (per subclass)."""
        raise NotImplementedError

def node_sum(edges, states, edge, weights, index, edge_weights):
    """One intermediate node: the sum of the mixed ops (each scaled by its edge weight, where there are
    any) from every earlier state, which are edges `edge`, `edge+1`, ...; returns the sum and the index
    of the next edge. The sum of the first two is a new tensor that later edges add into in place (addition
    keeps nothing for the backward pass), so a node costs one full-width tensor, not one per edge."""
    total = None
    for position, h in enumerate(states):
        out = edges[edge](h, weights[edge], None if index is None else index[edge],
                          None if edge_weights is None else edge_weights[edge])
        total = out if total is None else total + out if position == 1 else total.add_(out)
        edge += 1
    return total, edge
