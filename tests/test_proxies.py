"""The zero-cost proxies (nasrun/estimators/proxies.py): definitions checked by hand on tiny networks,
and the conventions every proxy keeps on every space's networks."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasrun.assessment.metrics import count_flops, example_input
from nasrun.training import count_parameters
from nasrun.errors import ConfigError
from nasrun.estimators.proxies import DATA_PROXIES, PROXIES, ProxyInputs, score, scores
from nasrun.spaces.darts import DartsSpace
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space

SPACES = {"macro": (MacroSpace(min_layers=2, max_layers=3), (1, 8, 8)),
          "nb201": (NB201Space(C=4, N=1), (3, 16, 16)),
          "darts": (DartsSpace(C=4, layers=3, auxiliary=True, drop_path_prob=0.2), (3, 16, 16))}
NB201_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NB201_CHEAP = "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|"
NB201_EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def batch(shape, n=8, classes=10, seed=0) -> ProxyInputs:
    g = torch.Generator().manual_seed(seed)
    return ProxyInputs([(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g))],
                       tuple(shape), classes)


def network(space, arch, shape, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return space.build(arch, shape, 10)


@pytest.mark.parametrize("name", list(SPACES))
def test_every_proxy_is_finite_repeatable_and_leaves_the_network_as_it_was(name):
    space, shape = SPACES[name]
    net = network(space, space.sample(random.Random(3)), shape)
    net.eval()
    weights = {k: v.clone() for k, v in net.named_parameters()}
    inputs = batch(shape)
    first = {proxy: score(proxy, net, inputs) for proxy in PROXIES}
    assert all(math.isfinite(v) for v in first.values()), first
    assert {proxy: score(proxy, net, inputs) for proxy in PROXIES} == first   # bit-identical
    assert scores(list(PROXIES), net, inputs) == first                         # shared passes, same numbers
    assert all(torch.equal(p, weights[k]) and p.grad is None for k, p in net.named_parameters())
    assert not any(m.training for m in net.modules())                          # the mode it was in


def test_synflow_of_a_positive_linear_chain_is_depth_times_the_output():
    # |θ|, all-ones input: R = Σ |W2| |W1| 1, and each layer's Σ|θ ⊙ ∂R/∂θ| equals R.
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2, 0.5], [0, 1, 1], [-1, -1, -1], [2, 0, 0]]))
        net[2].weight.copy_(torch.tensor([[1.0, -1, 0.5, 2], [0.5, 0, -3, 1]]))
    r = (net[2].weight.abs() @ net[0].weight.abs() @ torch.ones(3)).sum().item()
    assert score("synflow", net, ProxyInputs([], (3,), 2)) == pytest.approx(2 * r)


def test_synflow_ignores_batch_norm_and_survives_depth():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 10))
    with_bn = nn.Sequential(plain[0], nn.BatchNorm2d(8), *plain[1:])
    with_bn[1].running_var.fill_(1e-4)
    inputs = ProxyInputs([], (3, 4, 4), 10)
    assert score("synflow", with_bn, inputs) == score("synflow", plain, inputs)
    deep = nn.Sequential(*[nn.Sequential(nn.Conv2d(64 if i else 3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
                           for i in range(40)], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    assert math.isfinite(score("synflow", deep, ProxyInputs([], (3, 8, 8), 10)))   # float32 would overflow


def test_gradient_proxies_match_an_explicit_backward():
    space, shape = SPACES["macro"]
    net = network(space, space.sample(random.Random(1)), shape)
    inputs = batch(shape, n=16)
    x, y = inputs.batches[0]
    net.train()
    F.cross_entropy(net(x), y).backward()
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grad_norm = sum(m.weight.grad.norm().item() for m in convs)
    snip = sum((m.weight * m.weight.grad).abs().sum().item() for m in convs)
    net.zero_grad(set_to_none=True)
    assert score("grad_norm", net, inputs) == pytest.approx(grad_norm, rel=1e-5)
    assert score("snip", net, inputs) == pytest.approx(snip, rel=1e-5)


def test_naswot_is_the_log_determinant_of_the_relu_code_kernel():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3))
    inputs = batch((5,), n=6, classes=3)
    x = inputs.batches[0][0]
    codes = (net[0](x) > 0).double()
    kernel = codes @ codes.t() + (1 - codes) @ (1 - codes).t()
    assert score("naswot", net, inputs) == pytest.approx(torch.linalg.slogdet(kernel)[1].item())


def test_params_and_flops_are_the_assessment_measures():
    space, shape = SPACES["nb201"]
    net = network(space, NB201_CONV, shape)
    inputs = batch(shape)
    assert score("params", net, inputs) == count_parameters(net)
    assert score("flops", net, inputs) == count_flops(net, example_input(shape))


def test_proxies_rank_a_convolutional_cell_above_skips_and_pools():
    space, shape = NB201Space(C=8, N=2), (3, 16, 16)
    inputs = batch(shape, n=16)
    for proxy in ("synflow", "naswot"):
        assert score(proxy, network(space, NB201_CONV, shape), inputs) > \
            score(proxy, network(space, NB201_CHEAP, shape), inputs), proxy


NB201_DISCONNECTED = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"  # convs, no path out


@pytest.mark.parametrize("arch", [NB201_EMPTY, NB201_DISCONNECTED])
def test_every_data_proxy_of_a_network_that_ignores_its_input_is_nan(arch):
    space, shape = SPACES["nb201"]
    found = scores(list(DATA_PROXIES), network(space, arch, shape), batch(shape))
    assert all(math.isnan(value) for value in found.values()), found   # NASWOT used to score it highly
    assert math.isfinite(score("naswot", network(space, NB201_CONV, shape), batch(shape)))


def test_naswot_kernel_counts_exactly_on_conv_sized_codes():
    from nasrun.estimators.proxies import add_codes

    for shape in [(64, 16, 32, 32), (7, 3), (16, 64, 8, 8)]:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        kernel = torch.zeros(shape[0], shape[0], dtype=torch.float64)
        add_codes(kernel, x)
        codes = (x > 0).reshape(shape[0], -1).double()
        assert torch.equal(kernel, codes @ codes.t() + (1 - codes) @ (1 - codes).t()), shape


def test_data_proxies_average_over_batches_and_refuse_none():
    space, shape = SPACES["macro"]
    net = network(space, space.sample(random.Random(2)), shape)
    a, b = batch(shape, seed=1), batch(shape, seed=2)
    both = ProxyInputs(a.batches + b.batches, shape, 10)
    for proxy in DATA_PROXIES:
        assert score(proxy, net, both) == pytest.approx((score(proxy, net, a) + score(proxy, net, b)) / 2)
    with pytest.raises(ValueError, match="at least one training batch"):
        score("snip", net, ProxyInputs([], shape, 10))
    with pytest.raises(ConfigError, match="unknown zero-cost proxy"):
        score("magic", net, a)
