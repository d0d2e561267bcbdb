"""A toy search space shared by the runner, strategy, executor and objective tests."""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from nasrun.errors import InvalidArchitecture
from nasrun.spaces import Decision, SearchSpace


class ToySpace(SearchSpace):
    """`width` decisions of `options` choices; an architecture is the list of chosen options."""

    name = "toy"

    def __init__(self, width: int = 6, options: int = 4):
        self._decisions = [Decision(f"d{i}", tuple(range(options))) for i in range(width)]

    def decisions(self) -> list[Decision]:
        return self._decisions

    def encode(self, arch: Any) -> list[int]:
        if not isinstance(arch, list) or len(arch) != len(self._decisions):
            raise InvalidArchitecture(f"toy: expected a list of {len(self._decisions)} options, got {arch!r}")
        return [self.check_index(d, value) for d, value in zip(self._decisions, arch)]

    def decode(self, indices: Sequence[int]) -> list[int]:
        return [d.choices[i] for d, i in zip(self._decisions, indices)]

    def build(self, arch: Any, input_shape, num_classes: int) -> nn.Module:
        return nn.Linear(1, 1)
