"""The supernet interface every space's weight-sharing network implements.

A supernet holds the weights of every architecture of its space. `set_active(arch)` picks one path,
`forward(x)` computes that path, and `extract(arch)` returns the stand-alone network the space would
build for `arch` with the supernet's weights copied in, so it computes exactly what the supernet
computes with that path active. To support a new space, write one file here
with a subclass and decorate it with `@register_supernet("<space name>")`.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import torch
from torch import nn

from nasrun.errors import ConfigError
from nasrun.plugins import import_submodules
from nasrun.spaces import SearchSpace

SUPERNETS: dict[str, Callable[..., "Supernet"]] = {}


def register_supernet(space_name: str):
    def wrap(cls):
        SUPERNETS[space_name] = cls
        return cls

    return wrap


def build_supernet(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> "Supernet":
    """The supernet of `space` (freshly initialised from torch's current RNG)."""
    import_supernets()
    if space.name not in SUPERNETS:
        raise ConfigError(f"estimator=weight_sharing has no supernet for search_space '{space.name}' "
                          f"(supported: {sorted(SUPERNETS)})")
    return SUPERNETS[space.name](space, tuple(input_shape), int(num_classes))


def import_supernets() -> None:
    """Import every module of this package, so each registers its supernet(s)."""
    import_submodules("nasrun.supernets")


class Supernet(nn.Module):
    """Base class. `forward_samples` counts the images every forward pass has seen (a cost meter)."""

    def __init__(self, space: SearchSpace, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        self.space, self.input_shape, self.num_classes = space, tuple(input_shape), num_classes
        self.active: Any = None
        self.forward_samples = 0

    # --- the path --------------------------------------------------------------------------------
    def set_active(self, arch: Any) -> None:
        """Make `arch` (validated into its canonical form) the path `forward` computes."""
        self.active = self.space.validate(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            raise RuntimeError("supernet: call set_active(arch) before forward")
        self.forward_samples += x.shape[0]
        return self.forward_active(x)

    def forward_active(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extract(self, arch: Any) -> nn.Module:
        """The space's stand-alone network for `arch`, holding copies of the supernet's weights."""
        raise NotImplementedError

    # --- the subnets training strategies need ----------------------------------------------------
    def largest(self) -> Any:
        raise NotImplementedError

    def smallest(self) -> Any:
        raise NotImplementedError

    def shrink_stages(self) -> list[str]:
        """Progressive-shrinking stages, first to last; each enables more elastic choices."""
        return []

    def sample(self, rng: random.Random, stage: str | None = None) -> Any:
        """A uniformly random path; with `stage`, only the choices that stage enables vary."""
        return self.space.sample(rng)
