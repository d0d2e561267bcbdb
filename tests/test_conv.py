"""nasrun.nets.conv's route around oneDNN's slow dilated depthwise backward pass: the same values and
gradients as F.conv2d, taken only where it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nasrun.nets.conv import Conv2d, DilatedDepthwise, conv2d, slow_dilated_depthwise
from nasrun.nets.darts_ops import darts_op


def inputs(channels: int, size: int, kernel: int, channels_last: bool):
    torch.manual_seed(0)
    x = torch.randn(3, channels, size, size + 1, dtype=torch.float64)
    x = (x.to(memory_format=torch.channels_last) if channels_last else x).requires_grad_()
    return x, torch.randn(channels, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("kernel, dilation, stride, size", [(3, 2, 1, 8), (5, 2, 1, 7), (3, 3, 1, 9), (3, 2, 2, 8),
                                                            (5, 2, 2, 7), (3, 3, 3, 10)])
def test_the_route_computes_what_conv2d_computes(kernel, dilation, stride, size, channels_last):
    x, w = inputs(4, size, kernel, channels_last)
    padding = dilation * (kernel - 1) // 2
    assert slow_dilated_depthwise(x, w, stride, padding, dilation, 4)
    ours = conv2d(x, w, None, stride, padding, dilation, 4)
    reference = F.conv2d(x, w, None, stride, padding, dilation, 4)
    assert ours.shape == reference.shape and torch.allclose(ours, reference)
    weights = torch.randn_like(reference)
    grads = torch.autograd.grad((ours * weights).sum(), (x, w))
    expected = torch.autograd.grad((reference * weights).sum(), (x, w))
    assert all(torch.allclose(g, e) for g, e in zip(grads, expected))


def test_the_custom_backward_pass_is_differentiable_again():
    """DARTS's second order differentiates through gradients: gradcheck and gradgradcheck in float64."""
    x, w = inputs(2, 6, 3, channels_last=True)
    assert torch.autograd.gradcheck(DilatedDepthwise.apply, (x, w, (2, 2), (2, 2)))
    assert torch.autograd.gradgradcheck(DilatedDepthwise.apply, (x, w, (2, 2), (2, 2)))


def test_only_gradients_of_same_padded_dilated_depthwise_convolutions_take_the_route():
    x, w = inputs(4, 8, 3, channels_last=True)
    assert slow_dilated_depthwise(x, w, 1, 2, 2, 4)
    assert not slow_dilated_depthwise(x, w, 1, 1, 1, 4)                               # undilated
    assert not slow_dilated_depthwise(x, w, 1, 1, 2, 4)                               # not "same" padding
    assert not slow_dilated_depthwise(x, w, 2, 3, 3, 4)                               # stride neither 1 nor dilation
    assert not slow_dilated_depthwise(x, torch.randn(4, 4, 3, 3), 1, 2, 2, 1)         # not depthwise
    assert not slow_dilated_depthwise(x.detach(), w.detach(), 1, 2, 2, 4)             # no gradient wanted
    with torch.no_grad():
        assert not slow_dilated_depthwise(x, w, 1, 2, 2, 4)                           # evaluation


@pytest.mark.parametrize("op", ["dil_conv_3x3", "dil_conv_5x5"])
@pytest.mark.parametrize("stride", [1, 2])
def test_the_darts_dilated_ops_use_it_and_train_as_before(op, stride):
    """DilConv's depthwise conv is nasrun's Conv2d (same parameters and state dict as nn.Conv2d)."""
    torch.manual_seed(0)
    module = darts_op(op, 4, stride).double()
    assert isinstance(module[1], Conv2d) and module[1].dilation == (2, 2)
    plain = torch.nn.Conv2d(4, 4, module[1].kernel_size, stride, module[1].padding, module[1].dilation, 4,
                            bias=False).double()
    plain.load_state_dict(module[1].state_dict())
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    ours, reference = module[1](x), plain(x)
    assert torch.allclose(ours, reference)
    assert torch.allclose(torch.autograd.grad(ours.sum(), module[1].weight)[0],
                          torch.autograd.grad(reference.sum(), plain.weight)[0])
