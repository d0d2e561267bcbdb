"""Config → objects. `_target_` may only name classes of this package, so a saved or shared config is
data, never a way to run someone else's code."""

from __future__ import annotations

import inspect
from typing import Any

import hydra.utils
from omegaconf import DictConfig, ListConfig, OmegaConf

from nasrun.errors import ConfigError, NasrunError

PACKAGE_PREFIX = "nasrun."


def check_targets(node: Any, where: str) -> None:
    """Raise ConfigError if any `_target_` under `node` points outside the nasrun package."""
    if isinstance(node, DictConfig):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(PACKAGE_PREFIX):
            raise ConfigError(f"{where}._target_ = '{target}' names code outside the nasrun package; refusing to run it")
        for key in node.keys():
            check_targets(node._get_node(key), f"{where}.{key}")
    elif isinstance(node, ListConfig):
        for index, item in enumerate(node):
            check_targets(item, f"{where}[{index}]")


def accepts_name(target: str) -> bool:
    try:
        parameters = inspect.signature(hydra.utils.get_object(target)).parameters
    except Exception:  # hydra.utils.instantiate reports unimportable targets itself
        return False
    return "name" in parameters


def instantiate(node: DictConfig, where: str, **kwargs) -> Any:
    """Instantiate a config group's node, turning the errors users cause into one-line ConfigErrors."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{where}: expected a config with a _target_, got {OmegaConf.to_yaml(node).strip()!r}")
    check_targets(node, where)
    params = OmegaConf.to_container(node, resolve=True)
    if not accepts_name(params["_target_"]):
        params.pop("name", None)  # a label for summaries and comparisons, not a constructor argument
    try:
        return hydra.utils.instantiate(params, _convert_="all", **kwargs)
    except NasrunError:
        raise
    except hydra.errors.InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, NasrunError):
            raise cause from None
        message = str(cause or err).splitlines()[0]
        raise ConfigError(f"{where}: {message}") from err
