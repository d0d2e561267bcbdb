"""The DARTS / NASNet cell space: a normal and a reduction cell, each with `nodes` intermediate nodes
(4 in DARTS); each node picks two (op, input) pairs. An architecture is a genotype in JSON form
{"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5], "reduce": [...], "reduce_concat": [...]}.

Genotypes also import from and export to the notation the DARTS papers and code publish,
`Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[...])`,
parsed as literals (never evaluated), and by the names in `darts_genotypes.PUBLISHED`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from nasrun.errors import ConfigError, InvalidArchitecture
from nasrun.nets.darts import CELL_TYPES, DartsNetwork, check_genotype
from nasrun.nets.darts_ops import BUILDABLE_OPS, DARTS_OPS
from nasrun.spaces.base import Decision, Graph, SearchSpace
from nasrun.spaces.darts_genotypes import PUBLISHED, format_genotype, parse_genotype, published_genotype

__all__ = ["DartsSpace", "format_genotype", "parse_genotype"]  # the notation lives in darts_genotypes

INPUTS, OUTPUT = ("$c_{k-2}$", "$c_{k-1}$"), "$c_{k}$"  # the cell's inputs and output, as matplotlib mathtext
SEARCH_OPS = tuple(op for op in DARTS_OPS if op != "none")  # `none` never appears in a derived cell
SHORT = {"none": "0", "max_pool_3x3": "mp3", "avg_pool_3x3": "ap3", "skip_connect": "id", "sep_conv_3x3": "sc3",
         "sep_conv_5x5": "sc5", "sep_conv_7x7": "sc7", "dil_conv_3x3": "dc3", "dil_conv_5x5": "dc5",
         "conv_7x1_1x7": "c717"}


class DartsSpace(SearchSpace):
    """`ops` are the choices per pair; C, layers, auxiliary, drop_path_prob and stem shape the network."""

    name = "darts"

    def __init__(self, nodes: int = 4, ops: Sequence[str] = SEARCH_OPS, C: int = 36, layers: int = 20,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, stem: str = "cifar"):
        unknown = [op for op in ops if op not in BUILDABLE_OPS]
        if unknown or not ops:
            raise ConfigError(f"darts: unknown ops {unknown} (known: {list(BUILDABLE_OPS)})")
        if int(nodes) < 1 or int(C) < 2 or int(C) % 2 or int(layers) < 1:
            raise ConfigError(f"darts: need nodes >= 1, an even C >= 2 and layers >= 1, got {nodes}, {C}, {layers}")
        if not 0.0 <= float(drop_path_prob) < 1.0 or stem not in ("cifar", "imagenet"):
            raise ConfigError(f"darts: drop_path_prob must be in [0, 1) and stem cifar|imagenet, "
                              f"got {drop_path_prob}, {stem}")
        self.nodes, self.ops = int(nodes), tuple(ops)
        self.C, self.layers, self.auxiliary = int(C), int(layers), bool(auxiliary)
        self.drop_path_prob, self.stem = float(drop_path_prob), stem
        self._decisions = [
            Decision(f"{cell}.node{2 + k}.{what}{p}", self.ops if what == "op" else tuple(range(2 + k)))
            for cell in CELL_TYPES for k in range(self.nodes) for p in range(2) for what in ("op", "input")
        ]

    def decisions(self) -> list[Decision]:
        return self._decisions

    def validate(self, arch: Any) -> dict:
        return check_genotype(arch, self.ops, self.nodes)

    def encode(self, arch: Any) -> list[int]:
        """Ops and inputs of every pair; the concat lists are not part of the encoding."""
        genotype = self.validate(arch)
        values = [v for cell in CELL_TYPES for pair in genotype[cell] for v in pair]
        return [self.check_index(d, v) for d, v in zip(self._decisions, values)]

    def decode(self, indices: Sequence[int]) -> dict:
        if len(indices) != len(self._decisions):
            raise InvalidArchitecture(f"darts: expected {len(self._decisions)} indices, got {len(indices)}")
        values = [d.choices[i] for d, i in zip(self._decisions, indices)]
        genotype, per_cell = {}, 4 * self.nodes
        for c, cell in enumerate(CELL_TYPES):
            flat = values[c * per_cell:(c + 1) * per_cell]
            genotype[cell] = [[flat[i], flat[i + 1]] for i in range(0, per_cell, 2)]
            genotype[f"{cell}_concat"] = list(range(2, 2 + self.nodes))
        return genotype

    def key(self, arch: Any) -> str:
        """The two pairs of a node are unordered: (a, b) and (b, a) build the same network."""
        genotype = self.validate(arch)
        for cell in CELL_TYPES:
            pairs = genotype[cell]
            genotype[cell] = [sorted(pairs[i:i + 2]) for i in range(0, len(pairs), 2)]
        return json.dumps(genotype, sort_keys=True)

    def from_json(self, obj: Any) -> dict:
        """A genotype dict, a `Genotype(...)` text, or a published genotype's name (e.g. 'DARTS_V2')."""
        if isinstance(obj, str):
            obj = published_genotype(obj) if obj in PUBLISHED else parse_genotype(obj)
        return self.validate(obj)

    def build(self, arch: Any, input_shape: Sequence[int], num_classes: int) -> DartsNetwork:
        return DartsNetwork(self.validate(arch), input_shape, num_classes, **self.network_options())

    def network_options(self) -> dict:
        return {"C": self.C, "layers": self.layers, "auxiliary": self.auxiliary,
                "drop_path_prob": self.drop_path_prob, "stem": self.stem}

    def describe(self, arch: Any) -> str:
        genotype = self.validate(arch)
        return "  ".join(f"{cell}: " + " ".join(f"{SHORT.get(op, op)}@{src}" for op, src in genotype[cell])
                         for cell in CELL_TYPES)

    @staticmethod
    def edge_names(edges: int) -> list[str] | None:
        """`node 1 ← $c_{k-1}$` and so on: node i's edges from both inputs and every earlier node, node by
        node (the α order of the DARTS supernet); None unless `edges` fits a whole number of nodes."""
        names, node = [], 0
        while len(names) < edges:
            names += [f"node {node} ← {state_name(source)}" for source in range(node + 2)]
            node += 1
        return names if len(names) == edges else None

    @staticmethod
    def graphs(genotype: dict) -> list[Graph]:
        """DARTS genotype: {"normal": [[op, input], ...] (two per node), "normal_concat": [...], "reduce": ...}."""
        graphs = []
        for cell in ("normal", "reduce"):
            if cell not in genotype:
                continue
            graph = Graph(f"{cell} cell")
            pairs = genotype[cell]
            steps = math.ceil(len(pairs) / 2)
            graph.nodes = [("c0", INPUTS[0]), ("c1", INPUTS[1]), *[(f"s{i}", f"node {i}") for i in range(steps)],
                           ("out", OUTPUT)]
            graph.positions = {"c0": (0.0, 1.2), "c1": (0.0, -1.2), "out": (2.0 * (steps + 1), 0.0),
                               **{f"s{i}": (2.0 * (i + 1), 1.0 if i % 2 == 0 else -1.0) for i in range(steps)}}
            names = ["c0", "c1", *[f"s{i}" for i in range(steps)]]
            for index, (op, source) in enumerate(pairs):
                graph.edges.append((names[int(source)], f"s{index // 2}", op, False))
            concat = genotype.get(f"{cell}_concat", range(2, 2 + steps))
            graph.edges += [(names[int(node)], "out", "", True) for node in concat]
            graphs.append(graph)
        return graphs


def state_name(state: int) -> str:
    """A genotype input index as a name: the two cell inputs, then the intermediate nodes."""
    return INPUTS[state] if state < 2 else f"node {state - 2}"
