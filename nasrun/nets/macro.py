"""The layer-by-layer (macro) network: stem, a stack of layers with optional skips, global pool, classifier.

An architecture is {"stem": C, "layers": [{"op", "width", "stride", "skips": [node, ...]}, ...]}.
Node 0 is the stem's output and node i the output of layer i (1-based); layer i reads node i-1
and adds the (projected) outputs of the nodes listed in `skips`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nasrun.errors import InvalidArchitecture
from nasrun.nets import register
from nasrun.nets.conv import Conv2d
from nasrun.nets.pools import AvgPool2d, MaxPool2d

MACRO_OPS = ("conv3x3", "conv5x5", "conv7x7", "sepconv3x3", "sepconv5x5", "maxpool3x3", "avgpool3x3", "identity")


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """conv, BN, ReLU; the conv is `nasrun.nets.conv.Conv2d` (a strided 1x1 `identity` projection on a
    narrow layer would otherwise hit oneDNN's heap-corrupting AVX2 weight gradient)."""
    return nn.Sequential(
        Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


def sep_conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, kernel, stride, kernel // 2, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def make_op(op: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One macro layer's operation; pools and identity get a 1x1 projection when the width changes."""
    if op.startswith("conv"):
        return conv_bn_relu(c_in, c_out, int(op[-1]), stride)
    if op.startswith("sepconv"):
        return sep_conv(c_in, c_out, int(op[-1]), stride)
    if op in ("maxpool3x3", "avgpool3x3"):
        pool_cls = MaxPool2d if op == "maxpool3x3" else AvgPool2d  # torch's, faster on CPU (nasrun.nets.pools)
        pool = pool_cls(3, stride, 1) if op == "maxpool3x3" else pool_cls(3, stride, 1, count_include_pad=False)
        return pool if c_in == c_out else nn.Sequential(pool, conv_bn_relu(c_in, c_out, 1))
    if op == "identity":
        return nn.Identity() if stride == 1 and c_in == c_out else conv_bn_relu(c_in, c_out, 1, stride)
    raise InvalidArchitecture(f"macro: unknown op '{op}' (known: {list(MACRO_OPS)})")


def projection(c_in: int, c_out: int, size_in: int, size_out: int) -> nn.Module:
    """Reconcile a skip connection's channels and resolution with the layer it joins."""
    if size_in == size_out and c_in == c_out:
        return nn.Identity()
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(size_out)] if size_in != size_out else []
    layers += [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers)


class MacroLayer(nn.Module):
    def __init__(self, op: nn.Module, skips: dict[int, nn.Module]):
        super().__init__()
        self.op = op
        self.skip_nodes = list(skips)
        self.skip_projections = nn.ModuleList(skips.values())

    def forward(self, nodes: list[torch.Tensor]) -> torch.Tensor:
        out = self.op(nodes[-1])
        for node, project in zip(self.skip_nodes, self.skip_projections):
            out = out + project(nodes[node])
        return out


@register("macro")
class MacroNet(nn.Module):
    def __init__(self, arch: dict, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        channels, height = input_shape[0], input_shape[1]
        self.stem = conv_bn_relu(channels, arch["stem"], 3)
        widths, sizes = [arch["stem"]], [height]
        self.layers = nn.ModuleList()
        for index, layer in enumerate(arch["layers"], start=1):
            stride = int(layer.get("stride", 1))
            size = (sizes[-1] + stride - 1) // stride
            skips = {}
            for node in layer.get("skips", []):
                if not 0 <= node < index - 1:
                    raise InvalidArchitecture(f"macro: layer {index} skips from node {node}, not an earlier layer")
                skips[node] = projection(widths[node], layer["width"], sizes[node], size)
            self.layers.append(MacroLayer(make_op(layer["op"], widths[-1], layer["width"], stride), skips))
            widths.append(layer["width"])
            sizes.append(size)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [self.stem(x)]
        for layer in self.layers:
            nodes.append(layer(nodes))
        return self.head(nodes[-1])
