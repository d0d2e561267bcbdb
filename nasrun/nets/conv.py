"""`conv2d` / `Conv2d`: F.conv2d and nn.Conv2d, except for two shape classes that oneDNN handles badly on CPU:
one it gets wrong (a strided 1x1 weight gradient), one it gets very slowly (a dilated depthwise backward pass).

The bug (torch 2.14.1, its bundled oneDNN v3.12, on CPUs whose best ISA is AVX2, i.e. without AVX-512;
reproduce on any x86 CPU with ONEDNN_MAX_CPU_ISA=AVX2): the weight gradient of a **1x1 convolution with
stride > 1 and fewer than 8 input channels** (one AVX2 block of 8 floats), float32, groups=1, padding 0,
channels-last input, runs `jit_avx2_1x1_convolution_bwd_weights_t` (ONEDNN_VERBOSE: `jit_1x1:avx2,
backward_weights ... mb256_ic4oc2_ih8oh4kh1sh2dh0ph0_iw8ow4kw1sw2dw0pw0`), whose JIT kernel writes past the
end of the buffer ideep allocates in `mkldnn_convolution_backward_weights` (valgrind: "Invalid write of
size 8 ... 0 bytes after a block of size 384"). glibc then aborts the interpreter when the buffer is freed
(`double free or corruption (!prev)`, `corrupted double-linked list`), or the process runs on with a
corrupted heap. Valgrind sweeps (stride 2, AVX2) found it for input channels 2..7 at even input sizes >= 6
(odd sizes, 4x4, 1 and >= 8 input channels, stride 1, and NCHW inputs came out clean); the forward pass and
the input gradient are clean. In nasrun it is FactorizedReduce's pair of 1x1 stride-2 convs on a PC-DARTS
reduction edge (C=8, k=4: 16/4 = 4 channels in, 2 out), and a strided 1x1 projection of a narrow layer.

The workaround, for that whole class whatever the memory format or ISA (detecting oneDNN's ISA from Python
is unreliable and the replacement is cheap): the same maths without a convolution primitive. A 1x1 conv with
stride s and no padding is a subsample `x[:, :, ::s, ::s]` followed by a matmul over the channels,
out[n, o, i, j] = Σ_c w[o, c] · x[n, c, s·i, s·j], so outputs and both gradients match F.conv2d up to float
rounding (the products are the same, only the summation order may differ); the output keeps the input's
memory format (channels-last or contiguous).

The slow class: the backward pass of a **dilated depthwise convolution** (DARTS's dil_conv_3x3 / 5x5) runs
oneDNN's reference kernels on CPU: 25-38 ms for a 3x3 / 5x5 kernel at dilation 2 on 32x16x32x32
channels-last inputs, against 0.5-1 ms for its forward pass (scripts/bench_darts.py's step spends more time
there than anywhere else). Where its padding keeps the size ("same": padding = dilation·(k-1)/2) and
gradients are wanted, it goes around them with the same maths:
- stride = dilation (a reduction edge): the output only reads every s-th row and column, so it is the
  undilated convolution (padding (k-1)/2) of `x[:, :, ::s, ::s]`, whose backward pass is oneDNN's fast one;
- stride 1: `DilatedDepthwise`, F.conv2d forward; backward, the input gradient is the forward convolution
  of the output gradient with the spatially flipped kernel (the transpose of a "same" stride-1 convolution),
  the weight gradient one multiply-and-sum per kernel tap.
Values match F.conv2d's up to float rounding (the same products, summed in another order). Forward-only
calls (no gradient wanted, evaluation, tracing and export) go to F.conv2d unchanged, as does every other
convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

# oneDNN's AVX2 1x1 weight-gradient kernel corrupts the heap below this many input channels (see above).
ONEDNN_SMALL_CHANNELS = 8
CONVOLUTION_BACKWARD = torch.ops.aten.convolution_backward.default  # resolved once, not per call


def needs_workaround(x: torch.Tensor, weight: torch.Tensor, stride, padding, groups: int) -> bool:
    """Whether F.conv2d(x, weight, ...) is in the shape class whose oneDNN weight gradient corrupts memory."""
    if x.device.type != "cpu" or x.dim() != 4 or groups != 1 or isinstance(padding, str):
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False  # export runs no backward pass; the exported graph keeps a plain Conv node
    return (tuple(weight.shape[-2:]) == (1, 1) and max(_pair(stride)) > 1 and _pair(padding) == (0, 0)
            and weight.shape[1] < ONEDNN_SMALL_CHANNELS)


def slow_dilated_depthwise(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation, groups: int) -> bool:
    """Whether F.conv2d(x, weight, ...) is a "same"-padded dilated depthwise convolution on CPU whose gradient
    is wanted and whose stride is 1 or its dilation (module doc)."""
    if not torch.is_grad_enabled() or not (x.requires_grad or weight.requires_grad):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return slow_dilated_class(x, weight, stride, padding, dilation, groups)


def slow_dilated_class(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation, groups: int) -> bool:
    """The shapes of `slow_dilated_depthwise`: a "same"-padded dilated depthwise convolution on CPU whose stride
    is 1 or its dilation."""
    if x.device.type != "cpu" or x.dim() != 4 or isinstance(padding, str):
        return False
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = weight.shape[-2:], _pair(stride), _pair(padding), _pair(dilation)
    if groups != x.shape[1] or weight.shape[:2] != (groups, 1) or max(dh, dw) == 1:
        return False
    return (ph, pw) == (dh * (kh - 1) // 2, dw * (kw - 1) // 2) and kh % 2 == kw % 2 == 1 and (
        (sh, sw) == (1, 1) or (sh, sw) == (dh, dw))


class DilatedDepthwise(torch.autograd.Function):
    """A stride-1, "same"-padded dilated depthwise convolution whose backward pass uses no oneDNN backward
    kernel (module doc)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: tuple, dilation: tuple) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        return (*same_dilated_gradients(x, weight, grad, ctx.padding, ctx.dilation, *ctx.needs_input_grad[:2]),
                None, None)


def same_dilated_gradients(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, padding, dilation,
                           need_x: bool, need_weight: bool) -> tuple:
    """The input and weight gradients of `DilatedDepthwise` (module doc)."""
    grad_x = F.conv2d(grad, weight.flip(-2, -1), None, 1, padding, dilation, x.shape[1]) if need_x else None
    grad_weight = tap_gradients(x, grad, weight.shape[-2:], padding, dilation) if need_weight else None
    return grad_x, grad_weight


def tap_gradients(x: torch.Tensor, grad: torch.Tensor, kernel, padding, dilation) -> torch.Tensor:
    """The weight gradient of a stride-1 depthwise convolution: per tap (i, j), the sum over batch and
    positions of the output gradient times the input shifted by that tap."""
    (ph, pw), (dh, dw), (h, w) = padding, dilation, grad.shape[-2:]
    padded = F.pad(x, (pw, pw, ph, ph))
    taps = [(padded[:, :, i * dh:i * dh + h, j * dw:j * dw + w] * grad).sum((0, 2, 3))
            for i in range(kernel[0]) for j in range(kernel[1])]
    return torch.stack(taps, 1).view(x.shape[1], 1, *kernel)


def dilated_depthwise(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation) -> torch.Tensor:
    """F.conv2d for the class `slow_dilated_depthwise` accepts, around oneDNN's slow backward (module doc)."""
    (kh, kw), (sh, sw) = weight.shape[-2:], _pair(stride)
    if (sh, sw) != (1, 1):  # stride = dilation: the undilated convolution of the subsampled input
        return F.conv2d(x[:, :, ::sh, ::sw], weight, None, 1, ((kh - 1) // 2, (kw - 1) // 2), 1, x.shape[1])
    return DilatedDepthwise.apply(x, weight, _pair(padding), _pair(dilation))


def convolution_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d, need_input: bool,
                         need_weight: bool) -> tuple:
    """The input and weight gradients of `conv` (no bias) at input `x`: torch's own kernel, as autograd runs it."""
    d_input, d_weight, _ = CONVOLUTION_BACKWARD(grad, x, weight, None, conv.stride, conv.padding, conv.dilation, False,
                                                [0, 0], conv.groups, [need_input, need_weight, False])
    return d_input, d_weight


def dilated_depthwise_gradients(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, conv: nn.Conv2d,
                                need_x: bool, need_weight: bool) -> tuple:
    """The input and weight gradients of the dilated depthwise convolution `conv` (no bias, weight `weight`) at
    input `x`, as `conv2d` routes its backward pass (module doc), without building a graph; torch's own
    kernel outside the slow class."""
    stride, padding, dilation, groups = _pair(conv.stride), _pair(conv.padding), _pair(conv.dilation), conv.groups
    if not slow_dilated_class(x, weight, stride, padding, dilation, groups):
        return convolution_backward(grad, x, weight, conv, need_x, need_weight)
    if stride == (1, 1):
        return same_dilated_gradients(x, weight, grad, padding, dilation, need_x, need_weight)
    (kh, kw), (sh, sw) = weight.shape[-2:], stride
    grad_sub, grad_weight, _ = CONVOLUTION_BACKWARD(
        grad, x[:, :, ::sh, ::sw], weight, None, [1, 1], [(kh - 1) // 2, (kw - 1) // 2], [1, 1], False, [0, 0],
        groups, [need_x, need_weight, False])
    grad_x = None
    if need_x:
        grad_x = torch.zeros_like(x)
        grad_x[:, :, ::sh, ::sw] = grad_sub
    return grad_x, grad_weight


def strided_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride) -> torch.Tensor:
    """A 1x1, unpadded, ungrouped convolution with `stride` as subsample + matmul (no conv primitive)."""
    sh, sw = _pair(stride)
    x = x[:, :, ::sh, ::sw]
    channels_last = x.shape[1] > 1 and x.stride(1) < x.stride(3)
    out = torch.matmul(x.permute(0, 2, 3, 1), weight.reshape(weight.shape[0], -1).t())  # (n, h, w, c_out)
    if bias is not None:
        out = out + bias
    out = out.permute(0, 3, 1, 2)  # channels-last strides
    return out if channels_last else out.contiguous()


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> torch.Tensor:
    """F.conv2d, routing the shape class that corrupts the heap on AVX2 CPUs and the one whose backward pass is
    slow around oneDNN (module doc)."""
    if needs_workaround(x, weight, stride, padding, groups):
        return strided_pointwise(x, weight, bias, stride)  # dilation does not matter for a 1x1 kernel
    if bias is None and slow_dilated_depthwise(x, weight, stride, padding, dilation, groups):
        return dilated_depthwise(x, weight, stride, padding, dilation)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, state dict and isinstance) whose forward goes through `conv2d`."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            return super()._conv_forward(input, weight, bias)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
