"""The NAS-Bench-201 cell space: 6 edges, each one of 5 ops; 15,625 architectures, written as the
benchmark's strings `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from nasrun.nets.nb201_arch import NB201_EDGES, NB201_OPS, format_arch, parse_arch
from nasrun.spaces.base import Decision, Graph, SearchSpace

if TYPE_CHECKING:
    from nasrun.nets.nb201 import NB201Net


class NB201Space(SearchSpace):
    name = "nb201"

    def __init__(self, C: int = 16, N: int = 5):
        self.C, self.N = int(C), int(N)
        self._decisions = [Decision(f"edge{src}->{dst}", NB201_OPS) for dst, src in NB201_EDGES]

    def decisions(self) -> list[Decision]:
        return self._decisions

    def encode(self, arch: Any) -> list[int]:
        return [NB201_OPS.index(op) for op in parse_arch(arch)]

    def decode(self, indices: Sequence[int]) -> str:
        return format_arch([NB201_OPS[i] for i in indices])

    def key(self, arch: Any) -> str:
        return self.validate(arch)

    def build(self, arch: Any, input_shape: Sequence[int], num_classes: int) -> "NB201Net":
        from nasrun.nets.nb201 import NB201Net  # torch: a tabular run never builds a network

        return NB201Net(arch, input_shape, num_classes, C=self.C, N=self.N)

    def network_options(self) -> dict:
        return {"C": self.C, "N": self.N}

    def design_facts(self) -> dict:
        """What the space-design check reads (nasrun.assessment.space_check): the cell ops; channels double per stage."""
        return {"ops": list(NB201_OPS), "skip_ops": ["skip_connect"],
                "channels": [self.C, 2 * self.C, 4 * self.C]}

    def describe(self, arch: Any) -> str:
        return arch

    @staticmethod
    def edge_names(edges: int) -> list[str] | None:
        """`node 2 ← node 1` and so on, in the order of the architecture string (and of a supernet's α)."""
        if edges != len(NB201_EDGES):
            return None
        return [f"{node_name(target)} ← {node_name(source)}" for target, source in NB201_EDGES]

    @staticmethod
    def graphs(arch: str) -> list[Graph]:
        """The cell's four nodes with its non-`none` edges labelled by their ops."""
        graph = Graph("NAS-Bench-201 cell")
        graph.nodes = [(f"{i}", node_name(i)) for i in range(4)]
        graph.positions = {"0": (0.0, 0.0), "1": (2.0, 1.4), "2": (4.0, -1.4), "3": (6.0, 0.0)}
        for (target, source), op in zip(NB201_EDGES, parse_arch(arch)):
            if op != "none":
                graph.edges.append((f"{source}", f"{target}", op, False))
        return [graph]


def node_name(node: int) -> str:
    return "input" if node == 0 else ("output" if node == 3 else f"node {node}")
