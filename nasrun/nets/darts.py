"""The DARTS evaluation network, built from a genotype as the DARTS paper builds it.

A genotype is JSON data: {"normal": [[op, input], ...], "normal_concat": [2, 3, 4, 5], "reduce": [...],
"reduce_concat": [...]}. Node k (k = 2, 3, ...) of a cell sums its two (op, input) pairs; inputs 0 and 1
are the outputs of the two previous cells, input j >= 2 is node j. The cell outputs the concat nodes.

The network: a stem, `layers` cells with reduction cells at 1/3 and 2/3 depth (channels doubled at
each), an optional auxiliary head after the 2/3 cell, global pooling and a linear classifier. Training
mode with `drop_path_prob > 0` drops each non-identity op's output per sample (drop-path).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from torch import nn

from nasrun.errors import InvalidArchitecture
from nasrun.nets import register
from nasrun.nets.darts_ops import BUILDABLE_OPS, FactorizedReduce, ReLUConvBN, darts_op

CELL_TYPES = ("normal", "reduce")
GENOTYPE_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def check_genotype(arch: Any, ops: Sequence[str] = BUILDABLE_OPS, nodes: int | None = None) -> dict:
    """The canonical JSON form of a genotype, or InvalidArchitecture naming what is wrong."""
    if not isinstance(arch, dict) or set(arch) != set(GENOTYPE_KEYS):
        got = sorted(arch) if isinstance(arch, dict) else type(arch).__name__
        raise InvalidArchitecture(f"darts: a genotype is a mapping with keys {list(GENOTYPE_KEYS)}, got {got}")
    genotype = {}
    for cell in CELL_TYPES:
        pairs = check_pairs(cell, arch[cell], ops, nodes)
        genotype[cell] = pairs
        genotype[f"{cell}_concat"] = check_concat(cell, arch[f"{cell}_concat"], len(pairs) // 2)
    return genotype


def check_pairs(cell: str, pairs: Any, ops: Sequence[str], nodes: int | None) -> list:
    if not isinstance(pairs, (list, tuple)) or not pairs or len(pairs) % 2:
        raise InvalidArchitecture(f"darts: '{cell}' must list two (op, input) pairs per node, got {pairs!r}")
    if nodes is not None and len(pairs) != 2 * nodes:
        raise InvalidArchitecture(f"darts: '{cell}' has {len(pairs) // 2} nodes ({len(pairs)} pairs), "
                                  f"this space has {nodes} nodes ({2 * nodes} pairs)")
    result = []
    for position, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InvalidArchitecture(f"darts: '{cell}' pair {position} must be (op, input), got {pair!r}")
        op, source = pair
        if op not in ops:
            raise InvalidArchitecture(f"darts: unknown op '{op}' in '{cell}' (known: {list(ops)})")
        node = 2 + position // 2
        if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < node:
            raise InvalidArchitecture(f"darts: '{cell}' node {node} takes input {source!r}; "
                                      f"its inputs must be in 0..{node - 1}")
        result.append([op, source])
    return result


def check_concat(cell: str, concat: Any, nodes: int) -> list:
    valid = range(2, 2 + nodes)
    if (not isinstance(concat, (list, tuple, range)) or not concat or len(set(concat)) != len(concat)
            or any(isinstance(i, bool) or i not in valid for i in concat)):
        raise InvalidArchitecture(f"darts: '{cell}_concat' must list distinct nodes in {list(valid)}, got {concat!r}")
    return [int(i) for i in concat]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep).mul(mask)


class Cell(nn.Module):
    def __init__(self, pairs: list, concat: list, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.sources = [source for _, source in pairs]
        self.ops = nn.ModuleList(darts_op(op, c, 2 if reduction and source < 2 else 1) for op, source in pairs)
        self.concat, self.reduction = list(concat), reduction
        self.multiplier = len(concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for first in range(0, len(self.ops), 2):
            node = 0
            for position in (first, first + 1):
                op = self.ops[position]
                h = op(states[self.sources[position]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                node = node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """The DARTS auxiliary classifier. Inputs of 5x5 or more are pooled as published (5x5, stride 3 on
    CIFAR's 8x8 maps); smaller maps (tiny inputs) are pooled adaptively to 2x2."""

    def __init__(self, channels: int, size: int, num_classes: int, imagenet: bool = False):
        super().__init__()
        pool = nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False) if size >= 5 \
            else nn.AdaptiveAvgPool2d(2)
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), pool,
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


def cell_plan(layers: int, C: int, c_stem: int, imagenet: bool, multipliers: dict[bool, int]) -> Iterator[tuple]:
    """(reduction, reduction_prev, c_pp, c_p, c) of each cell, in order; `multipliers[reduction]` is the
    number of nodes a normal (False) or reduction (True) cell concatenates."""
    c_pp, c_p, c, reduction_prev = c_stem, c_stem, C, imagenet
    reductions = reduction_layers(layers)
    for i in range(layers):
        reduction = i in reductions
        c = c * 2 if reduction else c
        yield reduction, reduction_prev, c_pp, c_p, c
        c_pp, c_p, reduction_prev = c_p, multipliers[reduction] * c, reduction


def make_stem(input_channels: int, C: int, stem_multiplier: int, imagenet: bool) -> tuple[nn.Module, nn.Module | None, int]:
    """The CIFAR stem (one 3x3 conv to 3C) or the ImageNet stem (three stride-2 convs to C)."""
    if not imagenet:
        return nn.Sequential(nn.Conv2d(input_channels, stem_multiplier * C, 3, padding=1, bias=False),
                             nn.BatchNorm2d(stem_multiplier * C)), None, stem_multiplier * C
    stem0 = nn.Sequential(
        nn.Conv2d(input_channels, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True), nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
    stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(C))
    return stem0, stem1, C


@register("darts")
class DartsNetwork(nn.Module):
    def __init__(self, arch: Any, input_shape: Sequence[int], num_classes: int, C: int = 36, layers: int = 20,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, stem: str = "cifar"):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise InvalidArchitecture(f"darts: stem must be 'cifar' or 'imagenet', got '{stem}'")
        genotype = check_genotype(arch)
        imagenet = stem == "imagenet"
        self.drop_path_prob = float(drop_path_prob)
        self.stem0, self.stem1, c_stem = make_stem(input_shape[0], C, 3, imagenet)
        size = _after_stem(input_shape[1], imagenet)
        self.aux_position = 2 * layers // 3
        self.cells = nn.ModuleList()
        self.auxiliary_head = None
        widths = {reduction: len(genotype[f"{CELL_TYPES[reduction]}_concat"]) for reduction in (False, True)}
        for i, (reduction, reduction_prev, c_pp, c_p, c) in enumerate(cell_plan(layers, C, c_stem, imagenet, widths)):
            size = (size + 1) // 2 if reduction else size
            kind = CELL_TYPES[reduction]
            cell = Cell(genotype[kind], genotype[f"{kind}_concat"], c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            if auxiliary and i == self.aux_position:
                self.auxiliary_head = AuxiliaryHead(cell.multiplier * c, size, num_classes, imagenet)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cell.multiplier * c, num_classes)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.pool(s1).flatten(1))
        return (logits, aux) if aux is not None else logits


def _after_stem(size: int, imagenet: bool) -> int:
    for _ in range(3 if imagenet else 0):
        size = (size + 1) // 2
    return size
