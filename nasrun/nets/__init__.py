"""Networks built from saved architecture JSON, with no search code involved.

`load_network("best_architecture.json")` rebuilds the network a run found. A saved architecture is data:
`check_spec` refuses one whose network block a builder cannot take (unknown or `_target_` option keys,
options of the wrong type, a bad input shape or class count), and `load_network` refuses a network over
the size limits (nasrun.nets.size) before building it.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nasrun.errors import InvalidArchitecture
from nasrun.nets.size import NetworkLimits, check_input_shape, check_network_size
from nasrun.plugins import import_submodules
from nasrun.state import read_json_object

if TYPE_CHECKING:
    from torch import nn

BUILDERS: dict[str, Callable[..., "nn.Module"]] = {}


def register(space_name: str):
    """Class decorator: `build_network` dispatches on the saved space name to this builder."""

    def wrap(builder):
        BUILDERS[space_name] = builder
        return builder

    return wrap


def builder_of(space: Any) -> Callable[..., nn.Module]:
    import_submodules("nasrun.nets")
    if not isinstance(space, str) or space not in BUILDERS:
        raise InvalidArchitecture(f"no network builder for space {space!r} (known: {sorted(BUILDERS)})")
    return BUILDERS[space]


def build_network(space: str, arch: Any, input_shape, num_classes: int, **options) -> nn.Module:
    builder = builder_of(space)
    check_network_inputs(space, input_shape, num_classes, options)
    return builder(arch, input_shape=tuple(input_shape), num_classes=num_classes, **options)


def check_network_inputs(space: str, input_shape, num_classes, options) -> None:
    """InvalidArchitecture unless the builder of `space` takes `options` (known keys, each value of the kind
    of the option's default: `of_the_kind`), `input_shape` is three positive integers and `num_classes` a
    positive integer."""
    check_input_shape(input_shape, "network.input_shape")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidArchitecture(f"network.num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(options, dict):
        raise InvalidArchitecture(f"network.options must be a mapping of option: value, got {options!r}")
    accepted = {name: p.default for name, p in inspect.signature(builder_of(space)).parameters.items()
                if name not in ("arch", "input_shape", "num_classes") and p.kind is not p.VAR_KEYWORD}
    unknown = sorted(key for key in options if key not in accepted)
    if unknown:
        raise InvalidArchitecture(f"network.options: unknown key(s) {unknown} for space '{space}' "
                                  f"(known: {sorted(accepted)})")
    for key, value in options.items():
        if not of_the_kind(value, accepted[key]):
            raise InvalidArchitecture(f"network.options.{key}={value!r} does not fit '{space}' networks "
                                      f"(its default is {accepted[key]!r})")


def of_the_kind(value: Any, default: Any) -> bool:
    """Whether an option `value` has the kind of its `default`: a bool, a whole number >= 1 (>= 0 where the
    default is 0), a finite number >= 0, a string (anything, where the default says nothing)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(default, int):
        return isinstance(value, int) and value >= min(1, default)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def check_spec(spec: Any, where: str | Path) -> dict:
    """`spec` (a best_architecture.json, or an export's architecture.json), or InvalidArchitecture naming
    `where` and the key a network cannot be built from."""
    if not isinstance(spec, dict):
        raise InvalidArchitecture(f"{where} is not an architecture JSON object")
    missing = [key for key in ("space", "arch", "network") if key not in spec]
    if missing:
        raise InvalidArchitecture(f"{where} lacks {missing}: expected a best_architecture.json (or an export's "
                                  "architecture.json)")
    net = spec["network"]
    if not isinstance(net, dict) or "input_shape" not in net or "num_classes" not in net:
        raise InvalidArchitecture(f"{where}: 'network' must hold input_shape and num_classes, got {net!r}")
    try:
        check_network_inputs(spec["space"], net["input_shape"], net["num_classes"], net.get("options", {}))
    except InvalidArchitecture as err:
        raise InvalidArchitecture(f"{where}: {err}") from None
    return spec


def check_spec_size(spec: dict, where: str | Path, limits: NetworkLimits | None = None,
                    input_shape=None, num_classes: int | None = None, **options) -> None:
    """Refuse (NetworkTooLarge) the network of a checked `spec` over `limits`, before anything is allocated;
    `input_shape`, `num_classes` and `options` override the spec's (a network retrained on other data)."""
    net = spec["network"]
    shape = tuple(input_shape or net["input_shape"])
    options = {**net.get("options", {}), **options}
    check_network_size(lambda: build_network(spec["space"], spec["arch"], shape, num_classes or net["num_classes"],
                                             **options), shape, str(where), limits)


def network_accepts(space: str, option: str) -> bool:
    """Whether the network builder of `space` takes the keyword option `option` (e.g. `auxiliary`)."""
    return option in inspect.signature(builder_of(space)).parameters


def load_network(path: str | Path, limits: NetworkLimits | None = None) -> nn.Module:
    """Rebuild a freshly initialised network from a `best_architecture.json` file (within `limits`)."""
    spec = check_spec(read_json_object(path, "architecture JSON"), path)
    check_spec_size(spec, path, limits)
    net = spec["network"]
    return build_network(spec["space"], spec["arch"], net["input_shape"], net["num_classes"], **net.get("options", {}))
