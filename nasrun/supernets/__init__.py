"""Supernets: one network holding every architecture of a search space.

One file per space, holding both modes a space may offer: a single-path supernet (`base.Supernet`:
`set_active(arch)` picks the path, for `estimator=weight_sharing`; `build_supernet`) and an α-weighted one
(`weighted.WeightedSupernet`: every op runs, weighted by α, for DARTS / PC-DARTS / GDAS;
`build_weighted_supernet`). Both are built of the one `mixed.MixedOp` (cell spaces) and both registries
dispatch on the space's name (`space.name`)."""

from nasrun.supernets.base import SUPERNETS, Supernet, build_supernet, register_supernet

__all__ = ["SUPERNETS", "Supernet", "build_supernet", "register_supernet"]
