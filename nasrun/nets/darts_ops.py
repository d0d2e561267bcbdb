"""The DARTS / NASNet cell operations.

`darts_op(name, C, stride, affine)` builds one op with C channels in and out. Stride-2 ops halve the
spatial size to ceil(H/2) for every op, odd sizes included, so cells also work on 8x8 inputs.
The supernet builds them with `affine=False` batch norm, as the DARTS search does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasrun.errors import InvalidArchitecture
from nasrun.nets.conv import Conv2d
from nasrun.nets.lean import DepthwiseUnit, SearchBatchNorm2d, SharedRelu, batch_norm
from nasrun.nets.pools import AvgPool2d, MaxPool2d

# The 8 candidate ops of the DARTS search space, in the published order.
DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")
# Ops that appear only in published cells found by other methods (NASNet, AmoebaNet).
EXTRA_OPS = ("sep_conv_7x7", "conv_7x1_1x7")
BUILDABLE_OPS = DARTS_OPS + EXTRA_OPS
PARAMETER_FREE_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect")


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         batch_norm(c_out, affine))

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output for an `x` already passed through ReLU (conv and BN only)."""
        return self[2](self[1](x))


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise conv, pointwise conv, BN. The depthwise conv is `nasrun.nets.conv.Conv2d`: with
    dilation its backward pass goes around oneDNN's slow kernels (same values, several times faster on CPU)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            batch_norm(c_out, affine),
        )

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output for an `x` already passed through ReLU."""
        return self[3](self[2](self[1](x)))

    def after_relu_of(self, source: torch.Tensor, rectified: torch.Tensor | None = None,
                      shared: SharedRelu | None = None) -> torch.Tensor:
        """The module's output for relu(`source`); in a search network's training pass it keeps `source` and
        its norm's output for the backward pass, not the rectified input or the depthwise output
        (nasrun.nets.lean). `rectified`: `Rectified.apply(source)` where the caller shares one among ops,
        `shared` their recomputation of it."""
        _, depthwise, pointwise, norm = self
        if not (isinstance(norm, SearchBatchNorm2d) and norm.keeps_output(source)):
            return self.after_relu(source.relu() if rectified is None else rectified)
        return DepthwiseUnit.apply(rectified, source, depthwise.weight, pointwise.weight, depthwise, pointwise, norm,
                                   shared)


class SepConv(nn.Sequential):
    """Two stacked separable convs (the first one strided), as in DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine))

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output for an `x` already passed through ReLU."""
        return self[1].after_relu(self[0].after_relu(x).relu())

    def after_relu_of(self, source: torch.Tensor, rectified: torch.Tensor | None = None,
                      shared: SharedRelu | None = None) -> torch.Tensor:
        """`DilConv.after_relu_of` for both units: keeps `source` and the first unit's norm output, which
        that norm keeps anyway."""
        return self[1].after_relu_of(self[0].after_relu_of(source, rectified, shared))


class Conv7x1x7(nn.Sequential):
    """ReLU, 1x7 then 7x1 conv, BN (AmoebaNet's factorised 7x7)."""

    def __init__(self, channels: int, stride: int, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(channels, channels, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
                         nn.Conv2d(channels, channels, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
                         batch_norm(channels, affine))


class Zero(nn.Module):
    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two stride-2 1x1 convs on offset grids, concatenated. The convs are
    `nasrun.nets.conv.Conv2d`: with fewer than 8 input channels (a PC-DARTS edge) oneDNN's AVX2 weight
    gradient of a strided 1x1 conv corrupts the heap, and that module routes them around it."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = batch_norm(c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_relu(self.relu(x))

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output for an `x` already passed through ReLU."""
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # same grid as x[:, :, 1:, 1:] on even sizes
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def darts_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """One cell op on `channels` channels; `stride` 2 on the edges leaving a reduction cell's inputs."""
    c = channels
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return MaxPool2d(3, stride, padding=1)  # torch's, faster on CPU (nasrun.nets.pools)
    if name == "avg_pool_3x3":
        return AvgPool2d(3, stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"):
        kernel = int(name[-1])
        return SepConv(c, c, kernel, stride, kernel // 2, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        kernel = int(name[-1])
        return DilConv(c, c, kernel, stride, kernel // 2 * 2, 2, affine)
    if name == "conv_7x1_1x7":
        return Conv7x1x7(c, stride, affine)
    raise InvalidArchitecture(f"darts: unknown op '{name}' (known: {list(BUILDABLE_OPS)})")
