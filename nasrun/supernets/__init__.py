"""Supernets: one network holding every architecture of a search space, for weight-sharing estimation.

One file per space; `build_supernet` dispatches on the space's name (`space.name`)."""

from nasrun.supernets.base import SUPERNETS, Supernet, build_supernet, register_supernet

__all__ = ["SUPERNETS", "Supernet", "build_supernet", "register_supernet"]
