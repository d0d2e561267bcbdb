"""The NAS-Bench-201 cell space: 6 edges, each one of 5 ops; 15,625 architectures, written as the
benchmark's strings `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.

`partial_table` (development only, while `scripts/nb201_zc_table.py` is still scoring the space): `true`
or a list of proxies asks the runner to restrict the space to the architectures the zero-cost table has
scored so far by every proxy, or by those listed (`restrict`): samples, mutations, crossovers and
neighbourhoods then stay inside that subset.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Sequence

from nasrun.errors import ConfigError
from nasrun.nets.nb201_arch import NB201_EDGES, NB201_OPS, format_arch, parse_arch
from nasrun.spaces.base import Decision, Graph, SearchSpace

if TYPE_CHECKING:
    from nasrun.nets.nb201 import NB201Net


@lru_cache(maxsize=None)
def op_indices(arch: str) -> tuple[int, ...]:
    """The op index of each edge of `arch` (parsed once per string: strategies encode the same few
    thousand architectures over and over)."""
    return tuple(NB201_OPS.index(op) for op in parse_arch(arch))


@lru_cache(maxsize=None)
def canonical(arch: str) -> str:
    return format_arch([NB201_OPS[i] for i in op_indices(arch)])


class NB201Space(SearchSpace):
    name = "nb201"

    def __init__(self, C: int = 16, N: int = 5, partial_table: bool | list = False):
        if not isinstance(partial_table, (bool, list)):
            raise ConfigError(f"search_space.partial_table must be true, false or a list of proxies, got {partial_table!r}")
        self.C, self.N, self.partial_table = int(C), int(N), partial_table
        self._decisions = [Decision(f"edge{src}->{dst}", NB201_OPS) for dst, src in NB201_EDGES]
        self.allowed: list[str] | None = None   # the subset `restrict` keeps, None: the whole space
        self._allowed_keys: frozenset = frozenset()

    # --- a subset of the space (the partial zero-cost table) ----------------------------------------
    def restrict(self, archs: Sequence[str]) -> None:
        """Keep only `archs` (at least one)."""
        self.allowed = sorted({self.key(arch) for arch in archs})
        self._allowed_keys = frozenset(self.allowed)

    def allows(self, arch: Any) -> bool:
        return self.allowed is None or self.key(arch) in self._allowed_keys

    def size(self) -> int:
        return super().size() if self.allowed is None else len(self.allowed)

    def sample(self, rng: random.Random) -> str:
        return super().sample(rng) if self.allowed is None else rng.choice(self.allowed)

    def mutate(self, arch: Any, rng: random.Random) -> str:
        return self._inside(lambda: super(NB201Space, self).mutate(arch, rng), rng)

    def crossover(self, first: Any, second: Any, rng: random.Random) -> str:
        return self._inside(lambda: super(NB201Space, self).crossover(first, second, rng), rng)

    def neighbours(self, arch: Any) -> list[str]:
        return [n for n in super().neighbours(arch) if self.allows(n)]

    def _inside(self, make, rng: random.Random, tries: int = 100) -> str:
        """`make()` retried until it stays inside the subset; else a sample of it."""
        for _ in range(tries if self.allowed is not None else 1):
            arch = make()
            if self.allows(arch):
                return arch
        return self.sample(rng)

    def decisions(self) -> list[Decision]:
        return self._decisions

    def encode(self, arch: Any) -> list[int]:
        return list(op_indices(arch)) if isinstance(arch, str) else [NB201_OPS.index(op) for op in parse_arch(arch)]

    def decode(self, indices: Sequence[int]) -> str:
        return format_arch([NB201_OPS[i] for i in indices])

    def key(self, arch: Any) -> str:
        return canonical(arch) if isinstance(arch, str) else self.validate(arch)

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
