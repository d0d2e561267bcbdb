"""Networks built from saved architecture JSON, with no search code involved.

`load_network("best_architecture.json")` rebuilds the network a run found.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nasrun.errors import InvalidArchitecture
from nasrun.plugins import import_submodules

if TYPE_CHECKING:
    from torch import nn

BUILDERS: dict[str, Callable[..., "nn.Module"]] = {}


def register(space_name: str):
    """Class decorator: `build_network` dispatches on the saved space name to this builder."""

    def wrap(builder):
        BUILDERS[space_name] = builder
        return builder

    return wrap


def build_network(space: str, arch: Any, input_shape, num_classes: int, **options) -> nn.Module:
    import_submodules("nasrun.nets")
    if space not in BUILDERS:
        raise InvalidArchitecture(f"no network builder for space '{space}' (known: {sorted(BUILDERS)})")
    return BUILDERS[space](arch, input_shape=tuple(input_shape), num_classes=num_classes, **options)


def network_accepts(space: str, option: str) -> bool:
    """Whether the network builder of `space` takes the keyword option `option` (e.g. `auxiliary`)."""
    import_submodules("nasrun.nets")
    builder = BUILDERS.get(space)
    return builder is not None and option in inspect.signature(builder).parameters


def load_network(path: str | Path) -> nn.Module:
    """Rebuild a freshly initialised network from a `best_architecture.json` file."""
    spec = json.loads(Path(path).read_text())
    net = spec["network"]
    return build_network(spec["space"], spec["arch"], net["input_shape"], net["num_classes"], **net.get("options", {}))
