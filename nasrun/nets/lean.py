"""What the search networks keep for the backward pass: less than torch would, same values.

`SearchBatchNorm2d`, the affine-free batch norm of the search cells, keeps its output instead of its
input. Affine-free, y = (z - mean) * invstd, and the input gradient needs only y and invstd:
dz = invstd * (dy - mean(dy) - y * mean(dy * y)), per channel over batch and space. Whatever follows the
norm in a search cell keeps y anyway (the α-weighted sum keeps every op's output for α's gradient, the next
unit of a separable conv its input), so saving y in place of z frees z, the convolution or pool output
before the norm: one full-width tensor per norm. The backward pass is torch's own fused kernel, given y as
its input, invstd as its weight and 0 / 1 as the batch statistics, which computes exactly that formula.
Same values as nn.BatchNorm2d forward (the same kernel), gradients equal up to float rounding. Its output
must not be changed in place afterwards (autograd says so if it is).

`DepthwiseUnit`: ReLU, a depthwise then a pointwise convolution, then that norm (one unit of DARTS's
separable and dilated convs, in one autograd node) keeping only the unrectified input, which the edge or
the previous unit keeps anyway, the weights, and the norm's output: the rectified input and the depthwise
output, which the convolutions' gradients need, are recomputed in the backward pass (a depthwise
convolution is cheap: k*k multiplies per value), the gradients come from torch's own kernels, and the
ReLU's mask from the unrectified input. An edge's four convs share one `Rectified`, so that mask is
applied once to the sum of their gradients, and one `SharedRelu`, so relu(input) is recomputed once. A separable conv keeps 2 full-width tensors instead of 6, a
dilated conv 1 instead of 3, and an edge no rectified copy of its input.

Both apply where the search trains with gradients on float32/float64 tensors outside autocast
(`keeps_less`); evaluation, no-grad passes and mixed precision take torch's own path. Their backward
passes are differentiable once: a second derivative through them is refused, not computed wrong.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nasrun.nets.conv import convolution_backward, dilated_depthwise_gradients

SAVING_DTYPES = (torch.float32, torch.float64)
# torch's kernels, resolved once (an op called through torch.ops.aten.<name> is looked up on every call)
BATCH_NORM_BACKWARD = torch.ops.aten.native_batch_norm_backward.default
THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default


def keeps_less(x: torch.Tensor, training: bool) -> bool:
    """Whether a training pass on `x` takes the paths of this module (module doc)."""
    return training and torch.is_grad_enabled() and x.dtype in SAVING_DTYPES and not autocasting(x.device.type)


def autocasting(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def normalize(z: torch.Tensor, norm: "SearchBatchNorm2d") -> tuple[torch.Tensor, torch.Tensor]:
    """`norm`'s training-mode output for `z` and its inverse std; updates its running statistics as
    nn.BatchNorm2d does (`statistics_kept` in nasrun.supernets.mixed still holds them)."""
    y, _, invstd = torch.native_batch_norm(z, None, None, norm.running_mean, norm.running_var, True,
                                           norm.step_momentum(), norm.eps)
    return y, invstd


def normalize_backward(dy: torch.Tensor, y: torch.Tensor, invstd: torch.Tensor, eps: float) -> torch.Tensor:
    """The input gradient of an affine-free training-mode batch norm from its output (module doc)."""
    zeros, ones = unit_statistics(invstd.shape[0], invstd.dtype, invstd.device)
    return BATCH_NORM_BACKWARD(dy, y, invstd, None, None, zeros, ones, True, eps, [True, False, False])[0]


@functools.lru_cache(maxsize=256)
def unit_statistics(channels: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean of 0 and an inverse std of 1 per channel (never written to)."""
    return torch.zeros(channels, dtype=dtype, device=device), torch.ones(channels, dtype=dtype, device=device)


class NormKeepingOutput(torch.autograd.Function):
    """Training-mode affine-free batch norm over dim 1 that saves its output and inverse std."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, norm: "SearchBatchNorm2d") -> torch.Tensor:
        y, invstd = normalize(z, norm)
        ctx.save_for_backward(y, invstd)
        ctx.eps = norm.eps
        return y

    @staticmethod
    @once_differentiable  # a second derivative through it would be wrong silently: refused instead
    def backward(ctx, dy: torch.Tensor):
        y, invstd = ctx.saved_tensors
        return normalize_backward(dy, y, invstd, ctx.eps), None


class SearchBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d(affine=False) whose training pass keeps its output, not its input (module doc); the
    same buffers, state dict and running statistics."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=False)

    def keeps_output(self, z: torch.Tensor) -> bool:
        """Whether a pass on `z` takes this module's path; never while something replaced its `forward`
        (nasrun.distributed's global-batch statistics), which the units must then go through."""
        return (keeps_less(z, self.training) and z.dim() == 4 and "forward" not in self.__dict__
                and (self.running_mean is None or self.running_mean.dtype == z.dtype))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not (self.keeps_output(z) and z.requires_grad):
            return super().forward(z)
        return NormKeepingOutput.apply(z, self)

    def step_momentum(self) -> float:
        """Counts one training batch, as nn.BatchNorm2d does, and returns the running statistics' momentum."""
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return momentum


def batch_norm(channels: int, affine: bool) -> nn.BatchNorm2d:
    """The batch norm of a cell op: nn.BatchNorm2d, or SearchBatchNorm2d where it is affine-free (search)."""
    return nn.BatchNorm2d(channels) if affine else SearchBatchNorm2d(channels)


class Rectified(torch.autograd.Function):
    """relu(x) keeping x, not its output, for the backward pass (the same mask: x > 0)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.relu()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, = ctx.saved_tensors
        return THRESHOLD_BACKWARD(grad, x, 0)


class SharedRelu:
    """relu(source) for the backward passes of the `users` units that share one `Rectified` (an edge's
    convs): computed by the first that needs it, dropped after the last."""

    def __init__(self, users: int):
        self.users, self.value = users, None

    def take(self, source: torch.Tensor) -> torch.Tensor:
        value = source.relu() if self.value is None else self.value
        self.users -= 1
        self.value = value if self.users > 0 else None
        return value


class DepthwiseUnit(torch.autograd.Function):
    """norm(pointwise(depthwise(relu(source)))), keeping `source`, the two weights and the norm's output
    only: relu(source) and the depthwise output are recomputed in the backward pass (module doc).
    `rectified`: relu(source) from a `Rectified` the caller shares among several units, whose gradient
    is then returned for it (None: the unit rectifies `source` itself), and `shared` recomputes it once
    for all of them. `depthwise`, `pointwise`: the conv modules (`convolve`); `norm`: the SearchBatchNorm2d."""

    @staticmethod
    def forward(ctx, rectified, source, depthwise_weight, pointwise_weight, depthwise: nn.Conv2d,
                pointwise: nn.Conv2d, norm: SearchBatchNorm2d, shared: SharedRelu | None = None) -> torch.Tensor:
        d = convolve(depthwise, source.relu() if rectified is None else rectified, depthwise_weight)
        y, invstd = normalize(convolve(pointwise, d, pointwise_weight), norm)
        ctx.save_for_backward(source.detach(), depthwise_weight, pointwise_weight, y, invstd)
        ctx.depthwise, ctx.pointwise, ctx.eps, ctx.gated = depthwise, pointwise, norm.eps, rectified is not None
        ctx.shared_relu = shared
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        source, depthwise_weight, pointwise_weight, y, invstd = ctx.saved_tensors
        need_rectified, need_source, need_depthwise, need_pointwise = ctx.needs_input_grad[:4]
        need_input = need_rectified or need_source
        depthwise = ctx.depthwise
        dz = normalize_backward(dy, y, invstd, ctx.eps)
        rectified = source.relu() if ctx.shared_relu is None else ctx.shared_relu.take(source)
        d = convolve(depthwise, rectified, depthwise_weight)
        dd, d_pointwise = convolution_backward(dz, d, pointwise_weight, ctx.pointwise, need_input or need_depthwise,
                                               need_pointwise)
        if depthwise.dilation[0] > 1 or depthwise.dilation[1] > 1:  # as nasrun.nets.conv routes it
            d_rectified, d_depthwise = dilated_depthwise_gradients(rectified, depthwise_weight, dd, depthwise,
                                                                   need_input, need_depthwise)
        else:
            d_rectified, d_depthwise = convolution_backward(dd, rectified, depthwise_weight, depthwise, need_input,
                                                            need_depthwise)
        if ctx.gated:  # the caller's Rectified applies the mask
            return d_rectified, None, d_depthwise, d_pointwise, None, None, None, None
        d_source = THRESHOLD_BACKWARD(d_rectified, source, 0) if need_source else None
        return None, d_source, d_depthwise, d_pointwise, None, None, None, None


def convolve(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`conv` (no bias) on `x` with `weight`, straight to F.conv2d: a unit's pointwise conv has stride 1 and its
    depthwise conv is grouped, so neither is in nasrun.nets.conv's work-around classes, and the dilated
    depthwise backward pass that module routes is routed by `DepthwiseUnit.backward` itself."""
    return F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
