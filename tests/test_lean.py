"""What the DARTS search network keeps for its backward pass (nasrun/nets/lean.py) and its fast 3x3 pools
(nasrun/nets/pools.py): the values and gradients of torch's own modules, the same running statistics,
and less memory."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasrun.nets.lean import Rectified, SearchBatchNorm2d, SharedRelu
from nasrun.nets.pools import AvgPool2d, MaxPool2d, fast_pool
from nasrun.supernets.darts import DartsWeightedSupernet, PoolNorm, darts_search_op
from nasrun.supernets.weighted import Weighting
from nasrun.spaces.darts import SEARCH_OPS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from darts_reference import PlainDartsNetwork, plain_norms  # noqa: E402


def as_torch(module: nn.Module) -> nn.Module:
    """A copy of `module` with torch's own batch norms and pools (what the lean paths must equal)."""
    return plain_norms(copy.deepcopy(module))


def gradients(output, inputs, grad):
    return torch.autograd.grad(output, inputs, grad)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_search_batch_norm_is_torchs_with_its_output_kept(momentum, dtype):
    torch.manual_seed(0)
    ours = SearchBatchNorm2d(5).to(dtype)
    ours.momentum = momentum
    theirs = as_torch(nn.Sequential(ours))[0]
    assert type(theirs) is nn.BatchNorm2d and ours.state_dict().keys() == theirs.state_dict().keys()
    for _ in range(3):
        x = torch.randn(4, 5, 6, 7, dtype=dtype, requires_grad=True)
        out, expected = ours(x * 2 + 1), theirs(x * 2 + 1)
        assert out.grad_fn.name() == "NormKeepingOutputBackward"
        assert torch.equal(out, expected)
        grad = torch.randn_like(out)
        assert torch.allclose(gradients(out, x, grad)[0], gradients(expected, x, grad)[0],
                              rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6 if dtype == torch.float32 else 1e-12)
    for name, buffer in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], buffer), name
    ours.eval(), theirs.eval()
    x = torch.randn(4, 5, 6, 7, dtype=dtype)
    assert torch.equal(ours(x), theirs(x))


def test_the_search_batch_norm_takes_torchs_path_where_it_cannot_keep_its_output():
    norm = SearchBatchNorm2d(3)
    x = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    assert norm(x).grad_fn.name() == "NativeBatchNormBackward0"  # other dtypes
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(x).grad_fn.name() != "NormKeepingOutputBackward"  # mixed precision
    with torch.no_grad():
        assert norm(x).grad_fn is None
    out = norm(torch.randn(2, 3, 4, 4, requires_grad=True))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.relu_().sum().backward()  # its kept output changed: autograd says so, no wrong gradient


@pytest.mark.parametrize("name", ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shared", [False, True], ids=["own-relu", "shared-relu"])
@pytest.mark.parametrize("size", [8, 7])
def test_search_convs_keep_their_input_and_compute_torchs_values(name, stride, shared, size):
    torch.manual_seed(0)
    ours = darts_search_op(name, 6, stride).double().to(memory_format=torch.channels_last)
    theirs = as_torch(ours)
    for _ in range(2):
        x = torch.randn(3, 6, size, size, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
        out = ours.after_relu_of(x, Rectified.apply(x), SharedRelu(1)) if shared else ours.after_relu_of(x)
        expected = theirs(x)
        assert torch.equal(out, expected)
        grad = torch.randn_like(out)
        for found, wanted in zip(gradients(out, [x, *ours.parameters()], grad),
                                 gradients(expected, [x, *theirs.parameters()], grad)):
            assert torch.allclose(found, wanted, rtol=1e-10, atol=1e-12)
    for (key, buffer), (_, expected) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert torch.equal(buffer, expected), key


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 5), (2, 3, 1, 1), (1, 2, 2, 3)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fast_pools_compute_torchs_values_and_gradients(kind, stride, shape, layout):
    pool = nn.MaxPool2d(3, stride, padding=1) if kind == "max" else nn.AvgPool2d(3, stride, padding=1,
                                                                                 count_include_pad=False)
    x = torch.randn(*shape, dtype=torch.float64).to(memory_format=layout).requires_grad_()
    out, expected = fast_pool(pool, x), pool(x)
    assert out.shape == expected.shape
    assert torch.equal(out, expected) if kind == "max" else torch.allclose(out, expected, rtol=1e-13, atol=1e-14)
    grad = torch.randn_like(expected)
    assert torch.allclose(gradients(out, x, grad)[0], gradients(expected, x, grad)[0], rtol=1e-13, atol=1e-14)


def test_fast_max_pool_routes_gradients_through_ties_as_torch_does():
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)  # every window a tie
    pool = nn.MaxPool2d(3, 1, padding=1)
    grad = torch.arange(25.0).view(1, 1, 5, 5)
    assert torch.equal(gradients(fast_pool(pool, x), x, grad)[0], gradients(pool(x), x, grad)[0])


def test_fast_pools_leave_other_pools_to_torch():
    x = torch.randn(1, 2, 6, 6)
    for pool in (nn.MaxPool2d(2), nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), nn.MaxPool2d(3, 3, padding=1),
                 nn.AvgPool2d(3, 1, padding=1), nn.AvgPool2d(3, 1, padding=1, count_include_pad=False, divisor_override=2),
                 nn.MaxPool2d(3, 1, padding=1, dilation=2)):
        assert fast_pool(pool, x) is None, pool
    assert fast_pool(nn.MaxPool2d(3, 1, padding=1), torch.ones(2, 6, 6)) is None  # not 4-D


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 5), (2, 3, 1, 1)])
def test_the_pool_modules_are_torchs_pools(kind, stride, shape):
    """nasrun's MaxPool2d / AvgPool2d (NCHW through the channels-last kernel; AvgPool3x3) give torch's values
    (max: exactly, ties included) and gradients, and keep their input's memory format."""
    ours = MaxPool2d(3, stride, 1) if kind == "max" else AvgPool2d(3, stride, 1, count_include_pad=False)
    theirs = nn.MaxPool2d(3, stride, 1) if kind == "max" else nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64).round().relu().requires_grad_()  # many tied windows
    out, expected = ours(x), theirs(x)
    assert out.is_contiguous() and (torch.equal(out, expected) if kind == "max"
                                    else torch.allclose(out, expected, rtol=1e-13, atol=1e-14))
    grad = torch.randn_like(expected)
    assert torch.equal(gradients(out, x, grad)[0], gradients(expected, x, grad)[0]) if kind == "max" else \
        torch.allclose(gradients(out, x, grad)[0], gradients(expected, x, grad)[0], rtol=1e-13, atol=1e-14)
    assert ours(x.to(memory_format=torch.channels_last)).is_contiguous(memory_format=torch.channels_last)


def test_traced_pool_modules_record_torchs_pooling_op():
    network = nn.Sequential(MaxPool2d(3, 1, 1), AvgPool2d(3, 1, 1, count_include_pad=False)).eval()
    x = torch.randn(2, 3, 6, 6)
    graph = str(torch.jit.trace(network, x).inlined_graph)
    assert "aten::max_pool2d" in graph and "aten::avg_pool2d" in graph and "contiguous" not in graph
    assert torch.allclose(torch.jit.trace(network, x)(x), network(x), rtol=1e-6, atol=1e-7)


def test_search_pools_keep_no_indices():
    pool = darts_search_op("max_pool_3x3", 4, 1)
    assert isinstance(pool, PoolNorm)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        pool(x).sum().backward()
    assert not any(t.dtype == torch.int64 for t in kept)


def kept_bytes(run) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of `run()`'s result."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def test_the_search_network_keeps_well_under_half_of_what_the_plain_one_keeps():
    """scripts/bench_darts.py's reference network (torch's norms and pools, the same weights) against nasrun's
    supernet: one forward pass's saved tensors."""
    torch.manual_seed(0)
    ours = DartsWeightedSupernet((3, 16, 16), 10, Weighting(), C=4, layers=3, search_ops=SEARCH_OPS)
    plain = PlainDartsNetwork(C=4, num_classes=10, layers=3)
    x = torch.randn(8, 3, 16, 16)
    ours_kept = kept_bytes(lambda: F.cross_entropy(ours(x), torch.zeros(8, dtype=torch.long)))
    plain_kept = kept_bytes(lambda: F.cross_entropy(plain(x), torch.zeros(8, dtype=torch.long)))
    assert ours_kept < 0.4 * plain_kept, (ours_kept, plain_kept)


def test_units_normalise_through_a_replaced_norm_forward():
    """nasrun.distributed replaces a norm's forward (global-batch statistics) or the whole norm: the search
    convs then go through it instead of their own kernel."""
    from nasrun.distributed import SyncBatchNormCPU, convert_batchnorm_cpu

    op = darts_search_op("sep_conv_3x3", 4, 1)
    calls = []
    for norm in (m for m in op.modules() if isinstance(m, SearchBatchNorm2d)):
        norm.forward = (lambda norm: lambda x: calls.append(x.shape) or nn.BatchNorm2d.forward(norm, x))(norm)
    op.after_relu_of(torch.randn(2, 4, 5, 5, requires_grad=True)).sum().backward()
    assert len(calls) == 2
    converted = convert_batchnorm_cpu(darts_search_op("dil_conv_3x3", 4, 1))
    assert isinstance(converted[3], SyncBatchNormCPU)
    converted.after_relu_of(torch.randn(2, 4, 5, 5, requires_grad=True)).sum().backward()


def test_a_second_derivative_through_the_kept_outputs_is_refused():
    op = darts_search_op("dil_conv_3x3", 4, 1)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    grad, = torch.autograd.grad(op.after_relu_of(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad|marked with @once"):
        grad.sum().backward()


def test_an_edges_convs_recompute_their_shared_relu_once():
    relu_calls = []
    source = torch.randn(3)
    shared = SharedRelu(3)
    original = torch.Tensor.relu
    torch.Tensor.relu = lambda t: relu_calls.append(1) or original(t)
    try:
        values = [shared.take(source) for _ in range(3)]
    finally:
        torch.Tensor.relu = original
    assert len(relu_calls) == 1 and all(v is values[0] for v in values) and shared.value is None
    assert torch.equal(values[0], source.relu())
