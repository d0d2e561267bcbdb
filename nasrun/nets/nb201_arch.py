"""The NAS-Bench-201 architecture string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`: its ops and edges, parsed
and written. Plain strings, no torch: a tabular NB201 run reads and writes only these."""

from __future__ import annotations

from typing import Sequence

from nasrun.errors import InvalidArchitecture

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), in the string's order


def parse_arch(arch: str) -> list[str]:
    """The six ops of an arch string, in NB201_EDGES order. Malformed strings are clear errors."""
    if not isinstance(arch, str):
        raise InvalidArchitecture(f"nb201: an architecture is a string like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', got {arch!r}")
    nodes = arch.split("+")
    if len(nodes) != 3:
        raise InvalidArchitecture(f"nb201: '{arch}' has {len(nodes)} node groups separated by '+', expected 3")
    ops = []
    for target, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")):
            raise InvalidArchitecture(f"nb201: node group '{group}' in '{arch}' must start and end with '|'")
        edges = group[1:-1].split("|")
        if len(edges) != target:
            raise InvalidArchitecture(f"nb201: node {target} in '{arch}' has {len(edges)} incoming edges, expected {target}")
        for source, edge in enumerate(edges):
            op, sep, index = edge.partition("~")
            if op not in NB201_OPS:
                raise InvalidArchitecture(f"nb201: unknown op '{op}' in '{arch}' (known: {list(NB201_OPS)})")
            if sep != "~" or index != str(source):
                raise InvalidArchitecture(f"nb201: edge '{edge}' in '{arch}' must read '{op}~{source}'")
            ops.append(op)
    return ops


def format_arch(ops: Sequence[str]) -> str:
    """The benchmark string for six ops in NB201_EDGES order."""
    groups, position = [], 0
    for target in range(1, 4):
        groups.append("|" + "|".join(f"{ops[position + s]}~{s}" for s in range(target)) + "|")
        position += target
    return "+".join(groups)
