"""Checks of the top-level run config, before anything is built or trained."""

from __future__ import annotations

from numbers import Number

from omegaconf import DictConfig, OmegaConf

from nasrun.build import GROUPS, check_config
from nasrun.errors import ConfigError, NasrunError
from nasrun.nets.size import NetworkLimits
from nasrun.rundir import RunDir
from nasrun.state import read_yaml


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first problem: wrong types, non-positive budgets, missing groups."""
    missing = [group for group in GROUPS if group not in cfg or cfg[group] is None]
    if missing:
        raise ConfigError(f"config is missing the group(s) {missing}")
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    budget = cfg.get("budget")
    if not isinstance(budget, DictConfig):
        raise ConfigError(f"budget must be a mapping with 'trials' (and optionally 'seconds'), got {budget!r}")
    positive_int(budget.get("trials"), "budget.trials")
    seconds = budget.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, Number) or seconds <= 0):
        raise ConfigError(f"budget.seconds must be a positive number or null, got {seconds!r}")
    for flag in ("final_test", "progress", "report", "tensorboard", "debug", "estimate"):
        if flag in cfg and not isinstance(cfg[flag], bool):
            raise ConfigError(f"{flag} must be true or false, got {cfg[flag]!r}")
    network_limits(cfg)
    check_config(cfg)


def network_limits(cfg: DictConfig) -> NetworkLimits:
    """The size limits of the networks a search builds (`limits`; defaults where a key is left out)."""
    node = cfg.get("limits")
    if node is not None and not isinstance(node, DictConfig):
        raise ConfigError(f"limits must be a mapping (max_params, max_memory_gb, max_modules), got {node!r}")
    return NetworkLimits.from_config(OmegaConf.to_container(node) if node is not None else None)


def load_saved_config(run_dir) -> DictConfig:
    """A run directory's saved config, checked to be data: the directory has no link leading out of it,
    the file is within the size cap and has no YAML alias (nasrun.state.reads), and every `_target_` is
    a nasrun component class."""
    run = RunDir(run_dir).check()
    path = run.config
    if not path.is_file():
        raise NasrunError(f"{path} not found: RUN_DIR must be a nasrun run directory")
    cfg = read_yaml(path, "saved config")
    if not isinstance(cfg, DictConfig):
        raise NasrunError(f"{path} is not a nasrun run config (a mapping of config groups)")
    check_config(cfg)
    return cfg
