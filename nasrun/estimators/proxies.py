"""Zero-cost proxies: scores of a freshly initialised network that predict how well it will train.

Definitions follow the zero-cost-nas reference (Abdelfattah et al., 2021, "Zero-Cost Proxies for
Lightweight NAS") and NASWOT (Mellor et al., 2021); "layers" are the Conv2d and Linear weights:
  grad_norm  Σ_layers ‖∂L/∂W‖₂ for the cross-entropy L of one batch
  snip       Σ |W ⊙ ∂L/∂W|                                          (Lee et al., 2019)
  grasp      Σ −W ⊙ Hg, g = ∂L/∂W, Hg = ∂(g·∂L/∂W)/∂W               (Wang et al., 2020)
  fisher     Σ_channels ½ · mean_batch (Σ_spatial a ⊙ ∂L/∂a)² over each layer's output a (Turner et al., 2020)
  jacob_cov  −Σ log(v + k) + 1/(v + k), v the eigenvalues of the correlation matrix of the per-sample
             input Jacobians ∂Σy/∂x, k = 1e-5                         (Mellor et al., 2020, v1)
  naswot     log|det K|, K = Σ_ReLUs c cᵀ + (1−c)(1−c)ᵀ of the binary codes c = (ReLU input > 0)
  synflow    Σ |W ⊙ ∂R/∂W| with R = Σ f(1) of a float64 copy whose parameters are |θ| and whose
             BatchNorms are identities (the reference computes it with bn=False) (Tanaka et al., 2020)
  params     trainable parameters; flops: FLOPs of one forward pass (the baselines)

Conventions: data proxies run the network in train mode (batch statistics, as the reference does) with
drop-path off, average their score over the given batches, and leave the parameters, their `.grad` and
the train/eval mode as they found them (BN running statistics may move). They draw no random numbers:
the same network and batches give the same score. Every data proxy of a network whose output ignores its
input (the same logits for every sample of a batch) is undefined and returns NaN; the estimator reports it.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasrun.assessment.metrics import count_flops, example_input
from nasrun.training import count_parameters, logits_of
from nasrun.errors import ConfigError


@dataclass(frozen=True)
class ProxyInputs:
    batches: list[tuple[torch.Tensor, torch.Tensor]]  # (x, y) of the training split, on the network's device
    input_shape: tuple[int, ...]                       # (C, H, W) of one sample
    num_classes: int


@dataclass(frozen=True)
class Proxy:
    name: str
    needs_data: bool
    compute: Callable[[nn.Module, ProxyInputs], float]


def layers(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@contextmanager
def scoring(network: nn.Module) -> Iterator[nn.Module]:
    """Train mode without drop-path while scoring; the mode, drop-path and `.grad`s restored after."""
    modes = {m: m.training for m in network.modules()}
    drop_path = getattr(network, "drop_path_prob", None)
    grads = {p: p.grad for p in network.parameters()}
    network.train()
    if drop_path is not None:
        network.drop_path_prob = 0.0
    try:
        yield network
    finally:
        for module, training in modes.items():
            module.training = training
        if drop_path is not None:
            network.drop_path_prob = drop_path
        for parameter, grad in grads.items():
            parameter.grad = grad


DATA_PROXIES = ("jacob_cov", "naswot", "snip", "grad_norm", "grasp", "fisher")


def data_scores(network: nn.Module, inputs: ProxyInputs, wanted: Sequence[str]) -> dict[str, float]:
    """The `wanted` data proxies, each averaged over the batches; they share each batch's forward pass
    and loss gradient (grasp's Hessian-vector product and jacob_cov's input gradient reuse its graph)."""
    if not inputs.batches:
        raise ValueError("a data proxy needs at least one training batch")
    with scoring(network):
        rows = [batch_scores(network, x, y, set(wanted)) for x, y in inputs.batches]
    return {name: sum(row[name] for row in rows) / len(rows) for name in wanted}


def batch_scores(network: nn.Module, x: torch.Tensor, y: torch.Tensor, wanted: set[str]) -> dict[str, float]:
    weights = [m.weight for m in layers(network)]
    activations: list[torch.Tensor] = []
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64, device=x.device)
    hooks = [m.register_forward_hook(lambda m, a, out: activations.append(out) if out.requires_grad else None)
             for m in layers(network)] if "fisher" in wanted else []
    if "naswot" in wanted:
        hooks += [m.register_forward_pre_hook(lambda m, a: add_codes(kernel, a[0]))
                  for m in network.modules() if isinstance(m, nn.ReLU)]
    x = x.clone().requires_grad_("jacob_cov" in wanted)
    try:
        logits = logits_of(network(x))
    finally:
        for hook in hooks:
            hook.remove()
    if output_ignores_input(logits):
        return {name: float("nan") for name in wanted}
    scores = {"naswot": float(torch.linalg.slogdet(kernel)[1])} if "naswot" in wanted else {}
    if "jacob_cov" in wanted:
        (jacobian,) = torch.autograd.grad(logits.sum(), x, retain_graph=True)
        scores["jacob_cov"] = jacobian_score(jacobian.reshape(len(x), -1).double())
    if not wanted & {"grad_norm", "snip", "fisher", "grasp"}:
        return scores
    loss = F.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, weights + activations, create_graph="grasp" in wanted, retain_graph=True,
                                allow_unused=True)
    weight_grads, activation_grads = grads[:len(weights)], grads[len(weights):]
    pairs = [(w, g) for w, g in zip(weights, weight_grads) if g is not None]
    scores["grad_norm"] = sum(g.detach().norm().item() for _, g in pairs)
    scores["snip"] = sum((w * g).detach().abs().sum().item() for w, g in pairs)
    scores["fisher"] = sum(channel_fisher(a.detach(), g.detach()) for a, g in zip(activations, activation_grads)
                           if g is not None)
    if "grasp" in wanted:
        scores["grasp"] = grasp_score(pairs)
    return scores


def output_ignores_input(logits: torch.Tensor) -> bool:
    """Every sample of the batch gets the same output: the network ignores its input (e.g. an NB201 cell
    whose input reaches the output only through `none` ops), so no data proxy means anything for it."""
    return len(logits) > 1 and bool((logits.detach() == logits.detach()[:1]).all())


def add_codes(kernel: torch.Tensor, relu_input: torch.Tensor) -> None:
    """NASWOT: add the Hamming-similarity kernel c cᵀ + (1−c)(1−c)ᵀ of one ReLU's on/off codes, computed
    as n − |c_i| − |c_j| + 2 c_i·c_j with one matmul; in float32 where every count stays below 2²⁴, so
    the integers are exact and the result equals the float64 one."""
    codes = (relu_input.detach() > 0).reshape(len(kernel), -1)
    n = codes.shape[1]
    c = codes.to(torch.float32 if n < 2**24 else torch.float64)
    ones = c.sum(1, dtype=torch.float64)
    kernel.add_(2 * (c @ c.t()).double() - ones[:, None] - ones[None, :] + n)


def channel_fisher(activation: torch.Tensor, grad: torch.Tensor) -> float:
    per_channel = (activation * grad).sum(dim=tuple(range(2, activation.dim()))) if activation.dim() > 2 \
        else activation * grad
    return (0.5 * per_channel.pow(2).mean(0)).sum().item()


def jacobian_score(jacobian: torch.Tensor, k: float = 1e-5) -> float:
    corr = torch.corrcoef(jacobian)
    if not torch.isfinite(corr).all():
        return float("nan")  # a sample's Jacobian is constant: the output ignores the input
    v = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(v + k) + 1.0 / (v + k)).sum())


def grasp_score(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Σ −W ⊙ Hg from the loss gradients g (built with create_graph)."""
    z = sum((g * g.detach()).sum() for _, g in pairs)
    if not torch.is_tensor(z) or not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, [w for w, _ in pairs], allow_unused=True)
    return sum((-w.detach() * h).sum().item() for (w, _), h in zip(pairs, hg) if h is not None)


def synflow(network: nn.Module, inputs: ProxyInputs) -> float:
    copy_ = copy.deepcopy(network).double()
    for module in list(copy_.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for parameter in copy_.parameters():
            parameter.abs_()
    copy_.eval()
    if getattr(copy_, "drop_path_prob", None) is not None:
        copy_.drop_path_prob = 0.0
    device = next(copy_.parameters()).device
    ones = torch.ones((1, *inputs.input_shape), dtype=torch.float64, device=device)
    weights = [m.weight for m in layers(copy_)]
    grads = torch.autograd.grad(logits_of(copy_(ones)).sum(), weights, allow_unused=True)
    return sum((w * g).abs().sum().item() for w, g in zip(weights, grads) if g is not None)


PROXIES: dict[str, Proxy] = {proxy.name: proxy for proxy in (
    Proxy("synflow", False, synflow),
    *(Proxy(name, True, lambda network, inputs, name=name: data_scores(network, inputs, [name])[name])
      for name in DATA_PROXIES),
    Proxy("params", False, lambda network, inputs: float(count_parameters(network))),
    Proxy("flops", False, lambda network, inputs: float(count_flops(network, example_input(
        inputs.input_shape, device=str(next(network.parameters()).device))))),
)}


def score(name: str, network: nn.Module, inputs: ProxyInputs) -> float:
    """The proxy `name`'s score of `network` (ConfigError for an unknown name)."""
    return scores([name], network, inputs)[name]


def scores(names: Sequence[str], network: nn.Module, inputs: ProxyInputs) -> dict[str, float]:
    """Several proxies' scores of `network`, the data proxies sharing their passes over each batch."""
    unknown = [name for name in names if name not in PROXIES]
    if unknown:
        raise ConfigError(f"unknown zero-cost proxy {unknown[0]!r}; known: {sorted(PROXIES)}")
    shared = [name for name in names if name in DATA_PROXIES]
    found = data_scores(network, inputs, shared) if shared else {}
    return {name: found[name] if name in found else PROXIES[name].compute(network, inputs) for name in names}
