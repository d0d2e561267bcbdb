"""The macro space's supernet, in the once-for-all manner.

Each layer slot holds one weight tensor per op kind at the largest width and kernel: a subnet takes the
leading output (and input) channels and the centre of the kernel, so conv3x3/5x5/7x7 share one tensor and
sepconv3x3/5x5 another. Pools and identity, which differ in kind, have their own modules (the 1x1
projections they need when the width changes). Skip projections exist per (slot, source node). Depth
takes the first `depth` slots; the stride of a slot follows from the depth, as in the space.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasrun.nets.conv import Conv2d, conv2d
from nasrun.nets.macro import conv_bn_relu
from nasrun.spaces.macro import MacroSpace
from nasrun.supernets.base import Supernet, register_supernet

STAGES = ("full", "kernel", "depth", "width")


def op_kind(op: str) -> tuple[str, int]:
    """'sepconv5x5' -> ('sepconv', 5); 'identity' -> ('identity', 1)."""
    if op == "identity":
        return "identity", 1
    name, kernel = op[:-3], int(op[-1])
    return name, kernel


def centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    start = (weight.shape[-1] - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


class ElasticConv(Conv2d):
    """A conv at the largest channels and kernel; `forward` uses the leading channels and centre kernel
    (through `nasrun.nets.conv.conv2d`: a narrow strided 1x1 projection must avoid oneDNN's AVX2 bug)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, depthwise: bool = False):
        super().__init__(c_in, c_out, kernel, bias=False, groups=c_in if depthwise else 1)
        self.depthwise = depthwise

    def forward(self, x: torch.Tensor, c_out: int | None = None, kernel: int = 1, stride: int = 1) -> torch.Tensor:
        c_in = x.shape[1]
        if self.depthwise:
            weight, groups = self.weight[:c_in], c_in
        else:
            weight, groups = self.weight[:c_out, :c_in], 1
        return conv2d(x, centre(weight, kernel), None, stride, kernel // 2, 1, groups)


class ElasticBN(nn.BatchNorm2d):
    """Batch norm at the largest width; a narrower input uses (and updates) the leading channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)


class ElasticConvBN(nn.Module):
    """conv → BN (→ ReLU): the conv_bn_relu / projection blocks of the stand-alone net."""

    def __init__(self, c_in: int, c_out: int, kernel: int, relu: bool = True):
        super().__init__()
        self.conv, self.bn, self.relu = ElasticConv(c_in, c_out, kernel), ElasticBN(c_out), relu

    def forward(self, x, c_out, kernel=1, stride=1):
        x = self.bn(self.conv(x, c_out, kernel, stride))
        return F.relu(x) if self.relu else x


class ConvCandidate(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.block = ElasticConvBN(c_in, c_out, kernel)

    def forward(self, x, c_out, kernel, stride):
        return self.block(x, c_out, kernel, stride)


class SepConvCandidate(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.depthwise = ElasticConv(c_in, c_in, kernel, depthwise=True)
        self.pointwise = ElasticConv(c_in, c_out, 1)
        self.bn = ElasticBN(c_out)

    def forward(self, x, c_out, kernel, stride):
        x = self.pointwise(self.depthwise(x, None, kernel, stride), c_out)
        return F.relu(self.bn(x))


class PoolCandidate(nn.Module):
    """A 3x3 pool, then a 1x1 conv-BN-ReLU when the width changes (as the stand-alone net does)."""

    def __init__(self, c_in: int, c_out: int, kind: str):
        super().__init__()
        self.kind = kind
        self.project = ElasticConvBN(c_in, c_out, 1)

    def forward(self, x, c_out, kernel, stride):
        if self.kind == "maxpool":
            out = F.max_pool2d(x, 3, stride, 1)
        else:
            out = F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
        return out if x.shape[1] == c_out else self.project(out, c_out)


class IdentityCandidate(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.project = ElasticConvBN(c_in, c_out, 1)

    def forward(self, x, c_out, kernel, stride):
        return x if stride == 1 and x.shape[1] == c_out else self.project(x, c_out, 1, stride)


class SkipProjection(nn.Module):
    """Reconcile a skip's channels and resolution with its layer: adaptive pool, 1x1 conv, BN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.project = ElasticConvBN(c_in, c_out, 1, relu=False)

    def forward(self, x, c_out, size):
        if x.shape[-1] == size and x.shape[1] == c_out:
            return x
        if x.shape[-1] != size:
            x = F.adaptive_avg_pool2d(x, size)
        return self.project(x, c_out)


def make_candidate(kind: str, kernel: int, c_in: int, c_out: int) -> nn.Module:
    if kind == "conv":
        return ConvCandidate(c_in, c_out, kernel)
    if kind == "sepconv":
        return SepConvCandidate(c_in, c_out, kernel)
    if kind in ("maxpool", "avgpool"):
        return PoolCandidate(c_in, c_out, kind)
    return IdentityCandidate(c_in, c_out)


class MacroSlot(nn.Module):
    """Layer slot `index` (1-based): one candidate per op kind, one projection per possible skip source."""

    def __init__(self, index: int, space: MacroSpace, c_in: int, node_widths: Sequence[int]):
        super().__init__()
        c_out = max(space.widths)
        kernels: dict[str, int] = {}
        for op in space.ops:
            kind, kernel = op_kind(op)
            kernels[kind] = max(kernel, kernels.get(kind, 1))
        self.candidates = nn.ModuleDict({kind: make_candidate(kind, k, c_in, c_out) for kind, k in kernels.items()})
        sources = range(max(0, index - space.skip_window), index - 1)
        self.skips = nn.ModuleDict({str(node): SkipProjection(node_widths[node], c_out) for node in sources})

    def forward(self, nodes: list[torch.Tensor], sizes: list[int], layer: dict) -> torch.Tensor:
        kind, kernel = op_kind(layer["op"])
        stride, width = layer["stride"], layer["width"]
        out = self.candidates[kind](nodes[-1], width, kernel, stride)
        size = (sizes[-1] + stride - 1) // stride
        for node in layer["skips"]:
            out = out + self.skips[str(node)](nodes[node], width, size)
        return out


@register_supernet("macro")
class MacroSupernet(Supernet):
    def __init__(self, space: MacroSpace, input_shape: Sequence[int], num_classes: int):
        super().__init__(space, input_shape, num_classes)
        widest = max(space.widths)
        node_widths = [space.stem_width] + [widest] * space.max_layers
        self.stem = conv_bn_relu(input_shape[0], space.stem_width, 3)
        self.slots = nn.ModuleList(MacroSlot(i, space, node_widths[i - 1], node_widths)
                                   for i in range(1, space.max_layers + 1))
        self.classifier = nn.Linear(widest, num_classes)

    def forward_active(self, x: torch.Tensor) -> torch.Tensor:
        nodes, sizes = [self.stem(x)], [x.shape[-1]]
        for slot, layer in zip(self.slots, self.active["layers"]):
            nodes.append(slot(nodes, sizes, layer))
            sizes.append((sizes[-1] + layer["stride"] - 1) // layer["stride"])
        pooled = F.adaptive_avg_pool2d(nodes[-1], 1).flatten(1)
        return F.linear(pooled, self.classifier.weight[:, :pooled.shape[1]], self.classifier.bias)

    # --- extraction ------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: Any) -> nn.Module:
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.input_shape, self.num_classes)
        net.stem.load_state_dict(self.stem.state_dict())
        for slot, layer, target in zip(self.slots, arch["layers"], net.layers):
            copy_sliced(slot.candidates[op_kind(layer["op"])[0]], target.op)
            for node, projection in zip(target.skip_nodes, target.skip_projections):
                copy_sliced(slot.skips[str(node)], projection)
        linear = net.head[-1]
        linear.weight.copy_(self.classifier.weight[:, :linear.in_features])
        linear.bias.copy_(self.classifier.bias)
        return net.to(self.classifier.weight.device)

    # --- subnets for training strategies ----------------------------------------------------------
    def largest(self) -> dict:
        """Most parameters: max depth and width, every skip, the op with the most weights per slot."""
        return self._uniform_arch(self.space.max_layers, self._largest_op(), max(self.space.widths), skips=True)

    def smallest(self) -> dict:
        """The lower bound of every elastic dimension of the largest subnet's op kind: min depth and
        width, that kind's smallest kernel, no skips."""
        kind = op_kind(self._largest_op())[0]
        op = min((o for o in self.space.ops if op_kind(o)[0] == kind), key=lambda o: op_kind(o)[1])
        return self._uniform_arch(self.space.min_layers, op, min(self.space.widths), skips=False)

    def shrink_stages(self) -> list[str]:
        """Once-for-all's order: the full-size nets (op kinds and skips vary), then elastic kernel,
        then elastic depth, then elastic width."""
        return list(STAGES)

    def sample(self, rng: random.Random, stage: str | None = None) -> dict:
        if stage is None:
            return self.space.sample(rng)
        indices = [rng.randrange(len(d.choices)) for d in self.space.decisions()]
        enabled = set(STAGES[:STAGES.index(stage) + 1])
        for position, decision in enumerate(self.space.decisions()):
            value = decision.choices[indices[position]]
            if decision.name == "depth" and "depth" not in enabled:
                indices[position] = decision.choices.index(self.space.max_layers)
            elif decision.name.endswith(".width") and "width" not in enabled:
                indices[position] = decision.choices.index(max(self.space.widths))
            elif decision.name.endswith(".op") and "kernel" not in enabled:
                indices[position] = decision.choices.index(self._largest_kernel_of(op_kind(value)[0]))
        return self.space.decode(indices)

    def _largest_kernel_of(self, kind: str) -> str:
        return max((o for o in self.space.ops if op_kind(o)[0] == kind), key=lambda o: op_kind(o)[1])

    def _uniform_arch(self, depth: int, op: str, width: int, skips: bool) -> dict:
        indices = []
        for decision in self.space.decisions():
            if decision.name == "depth":
                indices.append(decision.choices.index(depth))
            elif decision.name.endswith(".op"):
                indices.append(decision.choices.index(op))
            elif decision.name.endswith(".width"):
                indices.append(decision.choices.index(width))
            else:
                indices.append(decision.choices.index(skips))
        return self.space.decode(indices)

    def _largest_op(self) -> str:
        return max(self.space.ops, key=lambda o: op_weight_count(o, max(self.space.widths)))


def op_weight_count(op: str, width: int) -> int:
    """Weights of one op at `width` in and out (pools and identity then need no projection)."""
    kind, kernel = op_kind(op)
    if kind == "conv":
        return kernel * kernel * width * width
    if kind == "sepconv":
        return kernel * kernel * width + width * width
    return 0


@torch.no_grad()
def copy_sliced(source: nn.Module, target: nn.Module) -> None:
    """Copy the leading channels / centre kernels of `source`'s convs and BNs into `target`'s, in order.
    Both modules list their convs and BNs in the order they are applied."""
    target_convs = [m for m in target.modules() if isinstance(m, nn.Conv2d)]
    target_bns = [m for m in target.modules() if isinstance(m, nn.BatchNorm2d)]
    source_convs = [m for m in source.modules() if isinstance(m, nn.Conv2d)]
    source_bns = [m for m in source.modules() if isinstance(m, nn.BatchNorm2d)]
    for src, dst in zip(source_convs, target_convs):
        out_c, in_c, kernel = dst.weight.shape[0], dst.weight.shape[1], dst.weight.shape[-1]
        dst.weight.copy_(centre(src.weight[:out_c, :in_c], kernel))
    for src, dst in zip(source_bns, target_bns):
        c = dst.num_features
        dst.weight.copy_(src.weight[:c])
        dst.bias.copy_(src.bias[:c])
        dst.running_mean.copy_(src.running_mean[:c])
        dst.running_var.copy_(src.running_var[:c])
        dst.num_batches_tracked.copy_(src.num_batches_tracked)
