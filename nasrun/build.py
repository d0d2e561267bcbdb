"""Config → objects, where a config is data: a `_target_` may only name one of the package's own
component classes (a space, strategy, estimator, dataset, hardware target or executor), so a saved or
shared config can never run someone else's code.

The check resolves the object and looks at what it is, never at the string: `module.Class` must be a
module of the `nasrun` package (imported, so only the package's own code runs) holding a class defined
right there under that name, derived from a component base. Module attributes (`nasrun.records.os`),
functions and classes imported from elsewhere are refused. It runs on the *resolved* config, so a
`_target_` that reaches a node through an `${...}` interpolation, a nested node or a list is checked
like any other, and hydra receives the checked class object, not a string it would resolve again.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import hydra.utils
from omegaconf import DictConfig, OmegaConf

from nasrun.datasets import DatasetSource
from nasrun.errors import ConfigError, NasrunError
from nasrun.estimators import Estimator
from nasrun.executors import Executor
from nasrun.hardware import Hardware
from nasrun.spaces import SearchSpace
from nasrun.strategies import Strategy

COMPONENT_BASES: dict[str, type] = {
    "search_space": SearchSpace, "strategy": Strategy, "estimator": Estimator,
    "dataset": DatasetSource, "hardware": Hardware, "executor": Executor,
}
GROUPS = tuple(COMPONENT_BASES)  # the config groups every run config holds (conf/<group>/)


# Keys a group's config may hold for every component of the group, handed to `component.configure(key,
# value)` after construction instead of to each constructor.
SHARED_SETTINGS = {"strategy": ("warmup",)}


def component_class(target: Any, where: str, base: type | tuple[type, ...] | None = None) -> type:
    """The class `target` names, if it is one of the package's component classes; else ConfigError."""
    refuse = f"{where}._target_ = {target!r}"
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"{refuse} is not a 'nasrun.<module>.<Class>' path; refusing it")
    module_name, _, name = target.rpartition(".")
    if module_name != "nasrun" and not module_name.startswith("nasrun."):
        raise ConfigError(f"{refuse} names code outside the nasrun package; refusing to run it")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(f"{refuse}: {module_name} is not a module of the nasrun package; refusing it") from None
    obj = vars(module).get(name)
    if not (inspect.isclass(obj) and obj.__module__ == module_name and obj.__qualname__ == name):
        raise ConfigError(f"{refuse} is not a class defined in {module_name}; only nasrun's component "
                          "classes can be built from a config")
    allowed = base or tuple(COMPONENT_BASES.values())
    if not issubclass(obj, allowed):
        kinds = allowed.__name__ if isinstance(allowed, type) else "component"
        raise ConfigError(f"{refuse} is not a nasrun {kinds} class; refusing it")
    return obj


def checked(node: Any, where: str, base: type | None = None) -> Any:
    """A copy of the plain (resolved) `node` whose every `_target_` is replaced by its checked class."""
    if isinstance(node, dict):
        out = {key: checked(value, f"{where}.{key}") for key, value in node.items() if key != "_target_"}
        if "_target_" in node:
            out["_target_"] = component_class(node["_target_"], where, base)
            if "name" not in inspect.signature(out["_target_"]).parameters:
                out.pop("name", None)  # a label for summaries and comparisons, not a constructor argument
        return out
    if isinstance(node, list):
        return [checked(item, f"{where}[{index}]") for index, item in enumerate(node)]
    return node


def resolved(node: Any, where: str) -> Any:
    """`node` as plain data with every interpolation resolved (a resolution error is a ConfigError)."""
    try:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    except Exception as err:  # an interpolation that cannot be resolved
        raise ConfigError(f"{where}: cannot be resolved: {str(err).splitlines()[0]}") from None


def check_config(cfg: DictConfig) -> None:
    """Refuse a run config any of whose `_target_`s (after interpolation, anywhere in it) is not a
    component class of the package, before anything is built."""
    plain = resolved(cfg, "config")
    for key, value in plain.items():
        checked(value, key, COMPONENT_BASES.get(key))


def instantiate(node: DictConfig, where: str, **kwargs) -> Any:
    """Instantiate a config group's node, turning the errors users cause into one-line ConfigErrors."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{where}: expected a config with a _target_, got {OmegaConf.to_yaml(node).strip()!r}")
    params = checked(resolved(node, where), where, COMPONENT_BASES.get(where.split(".")[0]))
    settings = {key: params.pop(key) for key in SHARED_SETTINGS.get(where, ()) if key in params}
    try:
        component = hydra.utils.instantiate(params, _convert_="all", **kwargs)
    except NasrunError:
        raise
    except hydra.errors.InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, NasrunError):
            raise cause from None
        message = str(cause or err).splitlines()[0]
        raise ConfigError(f"{where}: {message}") from err
    for key, value in settings.items():
        component.configure(key, value)
    return component


@dataclass
class Components:
    """The objects a config describes, one per group (None for a group not asked for)."""

    hardware: Hardware | None = None
    search_space: SearchSpace | None = None
    strategy: Strategy | None = None
    estimator: Estimator | None = None
    executor: Executor | None = None
    dataset: DatasetSource | None = None   # the source; `.load()` reads the data


def build_components(cfg: DictConfig, groups: Sequence[str] = tuple(COMPONENT_BASES)) -> Components:
    """Instantiate the config's `groups` (checked like every `_target_`), in the order given: the one
    place commands, experiments and scripts turn a composed config into components."""
    unknown = [group for group in groups if group not in COMPONENT_BASES]
    if unknown:
        raise ValueError(f"not component groups: {unknown}")
    return Components(**{group: instantiate(cfg[group], group) for group in groups})
