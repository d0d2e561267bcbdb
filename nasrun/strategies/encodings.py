"""Architectures as feature vectors for the model-based strategies (bananas, proxy_guided).

`one_hot`: every decision of the space's encoding as a one-hot block (any space). `nb201_paths`: the
BANANAS path encoding of an NB201 cell (White et al., 2021): one feature per input-to-output path of
live ops (the op sequence along 0→3, 0→1→3, 0→2→3 or 0→1→2→3, `none` ending a path), 4 + 16 + 64 = 84
features, of which at most 4 are set.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from nasrun.nets.nb201 import NB201_EDGES, NB201_OPS

LIVE_OPS = tuple(op for op in NB201_OPS if op != "none")


def one_hot(space, archs: Sequence[Any]) -> np.ndarray:
    """(len(archs), Σ choices) with a 1 at each decision's chosen option."""
    sizes = [len(d.choices) for d in space.decisions()]
    offsets = np.cumsum([0, *sizes[:-1]])
    features = np.zeros((len(archs), sum(sizes)))
    for row, arch in enumerate(archs):
        features[row, offsets + np.asarray(space.encode(arch))] = 1.0
    return features


@lru_cache(maxsize=1)
def cell_paths() -> tuple[tuple[int, ...], ...]:
    """Every path from node 0 to node 3 of the NB201 cell, as the indices of its edges in string order."""
    paths, stack = [], [(0, ())]
    while stack:
        node, path = stack.pop()
        if node == 3:
            paths.append(path)
            continue
        stack += [(to, path + (i,)) for i, (to, source) in enumerate(NB201_EDGES) if source == node]
    return tuple(sorted(paths, key=lambda p: (len(p), p)))


def nb201_paths(space, archs: Sequence[Any]) -> np.ndarray:
    """(len(archs), 84): the live paths of each NB201 cell by their op sequence."""
    width = {length: len(LIVE_OPS) ** length for length in (1, 2, 3)}
    offset = {1: 0, 2: width[1], 3: width[1] + width[2]}
    features = np.zeros((len(archs), sum(width.values())))
    for row, arch in enumerate(archs):
        ops = [space.decisions()[i].choices[choice] for i, choice in enumerate(space.encode(arch))]
        for path in cell_paths():
            labels = [ops[edge] for edge in path]
            if "none" in labels:
                continue
            index = 0
            for op in labels:
                index = index * len(LIVE_OPS) + LIVE_OPS.index(op)
            features[row, offset[len(path)] + index] = 1.0
    return features


def features(space, archs: Sequence[Any], encoding: str = "auto") -> np.ndarray:
    """`path` (NB201 only), `one_hot`, or `auto`: path on NB201, one-hot elsewhere."""
    if encoding == "auto":
        encoding = "path" if space.name == "nb201" else "one_hot"
    return nb201_paths(space, archs) if encoding == "path" else one_hot(space, archs)
