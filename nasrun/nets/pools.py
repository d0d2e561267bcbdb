"""3x3 pools (padding 1, stride 1 or 2) faster than torch's CPU kernels: the DARTS search cells' (keeping
nothing but their input for the backward pass), and `MaxPool2d` / `AvgPool2d`, the pool modules of nasrun's
networks (macro, NB201, DARTS).

torch's channels-last CPU kernels for a 3x3 pool take 4-8x the time of a depthwise 3x3 convolution of
the same tensor (32x16x32x32, 2 threads: max pool 0.85 ms, average pool 0.55 ms), and the two pools of
each edge were the costliest ops of a DARTS search step. A 3x3 window is separable: three shifted slices
combined along the width, then three along the height, four elementwise ops on strided views.

- `max_pool_3x3`: the maximum of the window, exactly torch's values. The backward pass recomputes
  torch's indices from the input (which the edge keeps anyway) and runs torch's own backward kernel, so
  gradients are torch's, ties included, and the int64 indices are never kept between the passes.
- `avg_pool_3x3`: the window's sum over the values inside the image, divided by their count
  (count_include_pad=False, as DARTS uses it); the same values up to float rounding. Its backward pass
  at stride 1 is the same window sum of the scaled gradient (a zero-padded 3x3 box sum is its own
  transpose); at stride 2 torch's backward kernel.

The modules: torch's max-pool kernel for contiguous (NCHW) CPU tensors is scalar, one plane at a time; its
channels-last kernel is vectorised over the channels. On 64x32x8x8 (the default run's 8x8 digits), one
thread, a 3x3 stride-1 max pool's forward took 3.1 ms NCHW against 0.25 ms channels-last (forward and
backward: 3.4 ms against 0.84 ms with the two layout copies; 64x32x32x32: 54 ms against 29 ms). So
`MaxPool2d` runs an NCHW input through the channels-last kernel and returns NCHW: torch's own values,
indices and gradients. `AvgPool2d` is `AvgPool3x3` where it applies (3x3, padding 1, count_include_pad=False:
2.5 ms against 0.9 ms forward and backward on 64x32x8x8). Traced, compiled and exported modules (and GPU
tensors) run torch's kernels as they are.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def output_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # kernel 3, padding 1, floor mode


def window(padded: torch.Tensor, stride: int, rows: int, cols: int, combine) -> torch.Tensor:
    """`combine` over each 3x3 window of `padded` (already padded by 1), at `stride`: (rows, cols) outputs."""
    def along(t: torch.Tensor, dim: int, count: int) -> torch.Tensor:
        span = (count - 1) * stride + 1
        first, second, third = (t[(slice(None),) * dim + (slice(start, start + span, stride),)] for start in range(3))
        return combine(combine(first, second), third)
    return along(along(padded, 3, cols), 2, rows)


@functools.lru_cache(maxsize=64)
def inverse_counts(height: int, width: int, stride: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """1 / (the number of in-image values of each window), shape (rows, cols)."""
    ones = F.pad(torch.ones(1, 1, height, width, dtype=dtype, device=device), (1, 1, 1, 1))
    return 1.0 / window(ones, stride, output_size(height, stride), output_size(width, stride), torch.add)[0, 0]


class MaxPool3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.stride = stride
        padded = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
        return window(padded, stride, output_size(x.shape[2], stride), output_size(x.shape[3], stride), torch.maximum)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, = ctx.saved_tensors
        shape = ([3, 3], [ctx.stride, ctx.stride], [1, 1])
        _, indices = torch.ops.aten.max_pool2d_with_indices(x, *shape)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, *shape, [1, 1], False, indices), None


class AvgPool3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.stride = stride
        rows, cols = output_size(x.shape[2], stride), output_size(x.shape[3], stride)
        scale = inverse_counts(x.shape[2], x.shape[3], stride, x.dtype, str(x.device))
        ctx.scale = scale
        return window(F.pad(x, (1, 1, 1, 1)), stride, rows, cols, torch.add) * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, = ctx.saved_tensors
        if ctx.stride == 1:
            return window(F.pad(grad * ctx.scale, (1, 1, 1, 1)), 1, x.shape[2], x.shape[3], torch.add), None
        stride = [ctx.stride, ctx.stride]
        return torch.ops.aten.avg_pool2d_backward(grad, x, [3, 3], stride, [1, 1], False, False, None), None


def fast_pool(pool: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """`pool(x)` by the functions above where `pool` is DARTS's 3x3 max or average pool (padding 1, stride
    1 or 2, count_include_pad=False) on a 4-D float CPU tensor; None otherwise."""
    if x.device.type != "cpu" or x.dim() != 4 or not x.is_floating_point() or min(x.shape[2:]) < 1:
        return None  # a GPU's pooling kernels read the tensor once: there, torch's own
    stride = pool.stride if isinstance(pool.stride, int) else tuple(pool.stride)
    if stride not in (1, 2, (1, 1), (2, 2)) or pool.ceil_mode or pool.kernel_size not in (3, (3, 3)):
        return None
    if pool.padding not in (1, (1, 1)):
        return None
    stride = stride if isinstance(stride, int) else stride[0]
    if isinstance(pool, nn.MaxPool2d) and pool.dilation in (1, (1, 1)) and not pool.return_indices:
        return MaxPool3x3.apply(x, stride)
    if isinstance(pool, nn.AvgPool2d) and not pool.count_include_pad and pool.divisor_override is None:
        return AvgPool3x3.apply(x, stride)
    return None


def plain_cpu_call(x: torch.Tensor) -> bool:
    """Whether a pool module may take its faster route for `x`: a 4-D CPU tensor, outside tracing,
    compiling and export (which record torch's own pooling op)."""
    if x.device.type != "cpu" or x.dim() != 4:
        return False
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)  # torch >= 2.5
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
                or exporting())


class MaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d; an NCHW CPU input goes through torch's channels-last kernel (module doc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if plain_cpu_call(x) and not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return super().forward(x)


class AvgPool2d(nn.AvgPool2d):
    """nn.AvgPool2d; DARTS's 3x3 form runs as `AvgPool3x3` on CPU (module doc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = fast_pool(self, x) if plain_cpu_call(x) else None
        return super().forward(x) if pooled is None else pooled
