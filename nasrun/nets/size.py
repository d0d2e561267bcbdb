"""How big a network is, found before anything is allocated, and the limits a network must stay within.

An architecture is data (a saved JSON, a shared run directory, a config): it can ask for 10^8 channels,
10^6 layers or a 10^5 x 10^5 input, and building that network would run until memory runs out. So a
network built from such data is first built on torch's `meta` device (shapes, no storage), and the build
stops as soon as it holds more modules or parameters than allowed (a 10^6-layer description costs
seconds). One image's activations are then bounded from the layers' widths and the input's size; only when
those bounds do not settle it does one forward pass on meta tensors measure them. Only a network within
the limits is then built for real.

Defaults (`NetworkLimits()`), far above what the bundled spaces build at their published sizes (DARTS'
CIFAR network: 3.3 M parameters, 1,340 modules, 0.1 GB of activations per image; its ImageNet network
4.7 M parameters) and below what breaks an ordinary machine:
  max_params     5e8   2 GB of float32 weights, 6 GB with their gradients and an optimiser buffer.
  max_memory_gb  32    weights, gradients and one optimiser buffer (3 x 4 bytes per parameter) plus the
                       activations of one image (float32); training holds a batch of them.
  max_modules    5e4   every module is a Python object of a few kilobytes that each step visits; 37x
                       the DARTS network, 4x the largest bundled supernet (weight sharing on the DARTS
                       space: 10,700 modules), and a build that stops there takes seconds.
torch is imported by the functions that build, so `NetworkLimits` costs a command nothing to import.
A search raises them with `limits.max_params=...` (conf/config.yaml); the commands that rebuild a saved
network (nasrun-export, -train, -benchmark) with `--max-params ...`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from torch import nn

from nasrun.errors import ConfigError, InvalidArchitecture, NasrunError

BYTES_PER_PARAMETER = 3 * 4  # float32 weight, its gradient and one optimiser buffer (SGD momentum)
CHANNEL_ATTRIBUTES = ("in_channels", "out_channels", "num_features", "in_features", "out_features", "num_channels")
LIMIT_KEYS = ("max_params", "max_memory_gb", "max_modules")


class NetworkTooLarge(NasrunError):
    """A network whose estimated size is over a limit (raise the limit to build it anyway)."""


@dataclass(frozen=True)
class NetworkLimits:
    """Upper bounds on a network built from data; `in_config`: set by a config's `limits` node (messages
    then name `limits.max_params`, else the commands' `--max-params`)."""

    max_params: float = 5e8
    max_memory_gb: float = 32.0
    max_modules: int = 50_000
    in_config: bool = False

    def __post_init__(self):
        for key in LIMIT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{key} must be a positive number, got {value!r}")

    @classmethod
    def from_config(cls, node) -> "NetworkLimits":
        """From a search config's `limits` node (a key left out keeps its default)."""
        values = dict(node or {})
        unknown = sorted(set(values) - set(LIMIT_KEYS))
        if unknown:
            raise ConfigError(f"limits: unknown key(s) {unknown} (known: {list(LIMIT_KEYS)})")
        try:
            return cls(**values, in_config=True)
        except ConfigError as err:
            raise ConfigError(f"limits.{err}") from None


    def raise_it(self, key: str) -> str:
        """How a user raises the limit `key`, for a message."""
        option = f"limits.{key}=..." if self.in_config else f"--{key.replace('_', '-')} ..."
        return f"raise the limit with {option} to build it anyway"


class _Stop(Exception):
    """Raised inside a meta build that went over the limit named by its first argument."""


def build_on_meta(build: Callable[[], nn.Module], limits: NetworkLimits) -> nn.Module:
    """`build()` on the meta device; _Stop as soon as it registers more modules or parameters than allowed."""
    import torch
    from torch.nn.modules.module import (register_module_module_registration_hook,
                                         register_module_parameter_registration_hook)

    owner, modules, params = threading.get_ident(), [0], [0]

    def on_module(module, name, submodule):
        if threading.get_ident() == owner and submodule is not None:
            modules[0] += 1
            if modules[0] > limits.max_modules:
                raise _Stop("max_modules", f"more than {int(limits.max_modules):,} modules (limit {int(limits.max_modules):,})")

    def on_parameter(module, name, parameter):
        if threading.get_ident() == owner and parameter is not None:
            params[0] += parameter.numel()
            if params[0] > limits.max_params:
                raise _Stop("max_params", f"at least {params[0]:.3g} parameters (limit {limits.max_params:.3g})")

    handles = [register_module_module_registration_hook(on_module),
               register_module_parameter_registration_hook(on_parameter)]
    try:
        with torch.device("meta"):
            return build()
    finally:
        for handle in handles:
            handle.remove()


def layers_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if next(m.children(), None) is None]


def activation_bounds(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """Bytes of one image's activations, bounded without running the network: at least the input; at most
    two tensors per layer (its output, and a sum or concatenation of it), each as wide as the widest layer
    and as large as the input (no layer of a classifier enlarges its feature maps)."""
    c, h, w = (int(d) for d in input_shape)
    layers = layers_of(model)
    widest = max([c, *(int(getattr(m, key, 0) or 0) for m in layers for key in CHANNEL_ATTRIBUTES)])
    return c * h * w * 4, c * h * w * 4 + 2 * len(layers) * widest * h * w * 4


def activation_bytes(model: nn.Module, input_shape: Sequence[int], where: str) -> int:
    """The bytes of every layer's output (and the input) in one forward pass of one image on meta tensors.
    Batch norm keeps a tensor's shape: it is swapped for an identity here (its meta kernel is slow), and its
    output still counted."""
    import torch
    from torch import nn

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
    total = [0]

    def count(module, inputs, output):
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total[0] += tensor.numel() * tensor.element_size()

    handles = [layer.register_forward_hook(count) for layer in layers_of(model)]
    x = torch.empty(1, *input_shape, device="meta")
    try:
        with torch.no_grad():
            model.eval()(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise InvalidArchitecture(f"{where}: the network does not run on a {tuple(input_shape)} input "
                                  f"({str(err).splitlines()[0][:160]})") from None
    finally:
        for handle in handles:
            handle.remove()
    return total[0] + x.numel() * x.element_size()


def check_network_size(build: Callable[[], nn.Module], input_shape: Sequence[int], where: str,
                       limits: NetworkLimits | None = None) -> None:
    """Refuse a network `build()` would make over the limits, with a one-line NetworkTooLarge naming
    `where` (the file or key it came from), the estimate and the option that raises the limit. Nothing
    real is allocated: the network is built on the meta device (and run there only when needed)."""
    limits = limits or NetworkLimits()
    check_input_shape(input_shape, where)
    try:
        model = build_on_meta(build, limits)
    except _Stop as err:
        key, what = err.args
        raise NetworkTooLarge(f"{where}: the network has {what}; {limits.raise_it(key)}") from None
    except InvalidArchitecture as err:
        raise InvalidArchitecture(f"{where}: {err}") from None
    params = sum(p.numel() for p in model.parameters())
    weights = params * BYTES_PER_PARAMETER + sum(b.numel() * b.element_size() for b in model.buffers())
    budget = limits.max_memory_gb * 2 ** 30 - weights
    least, most = activation_bounds(model, input_shape)
    if most <= budget:
        return
    activations = least if least > budget else activation_bytes(model, input_shape, where)
    if activations > budget:
        raise NetworkTooLarge(
            f"{where}: the network needs {'at least' if activations == least else 'about'} "
            f"{(weights + activations) / 2 ** 30:.3g} GiB for one {tuple(input_shape)} image ({params:.3g} "
            f"parameters, {activations / 2 ** 30:.3g} GiB of activations; limit {limits.max_memory_gb:g} GiB); "
            f"{limits.raise_it('max_memory_gb')}")


def check_input_shape(input_shape, where: str) -> None:
    if (not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3
            or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in input_shape)):
        raise InvalidArchitecture(f"{where}: input_shape must be three positive integers [channels, height, "
                                  f"width], got {input_shape!r}")
