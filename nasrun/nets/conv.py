"""`conv2d` / `Conv2d`: F.conv2d and nn.Conv2d, except for one shape class that oneDNN gets wrong on CPU.

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
memory format (channels-last or contiguous). Every other convolution goes to F.conv2d unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

# oneDNN's AVX2 1x1 weight-gradient kernel corrupts the heap below this many input channels (see above).
ONEDNN_SMALL_CHANNELS = 8


def needs_workaround(x: torch.Tensor, weight: torch.Tensor, stride, padding, groups: int) -> bool:
    """Whether F.conv2d(x, weight, ...) is in the shape class whose oneDNN weight gradient corrupts memory."""
    if x.device.type != "cpu" or x.dim() != 4 or groups != 1 or isinstance(padding, str):
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False  # export runs no backward pass; the exported graph keeps a plain Conv node
    return (tuple(weight.shape[-2:]) == (1, 1) and max(_pair(stride)) > 1 and _pair(padding) == (0, 0)
            and weight.shape[1] < ONEDNN_SMALL_CHANNELS)


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
    """F.conv2d, routing the shape class that corrupts the heap on AVX2 CPUs around oneDNN (module doc)."""
    if needs_workaround(x, weight, stride, padding, groups):
        return strided_pointwise(x, weight, bias, stride)  # dilation does not matter for a 1x1 kernel
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, state dict and isinstance) whose forward goes through `conv2d`."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            return super()._conv_forward(input, weight, bias)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
