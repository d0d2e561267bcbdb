"""Checks of the top-level run config, before anything is built or trained."""

from __future__ import annotations

import re
from numbers import Number
from typing import Sequence

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


SAVED = "saved_run"  # the config-group option a run's own saved node stands under while a config is composed


def compose_config(name: str, overrides: Sequence[str], saved: dict[str, DictConfig] | None = None,
                   return_hydra_config: bool = False) -> DictConfig:
    """Compose `conf/<name>.yaml` with `overrides` through Hydra, as `nasrun` composes its own (a one-line
    ConfigError for a bad override). `saved` ({group: node}, e.g. a run's saved dataset) stands in for
    that group's default unless an override picks another option of the group."""
    from hydra import compose, initialize_config_module
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException

    picked = {item.partition("=")[0] for item in overrides}
    chosen = [f"{group}={SAVED}" for group in saved or {} if group not in picked]
    for group in saved or {}:
        ConfigStore.instance().store(group=group, name=SAVED, node=saved[group])
    try:
        with initialize_config_module(config_module="nasrun.conf", version_base="1.3"):
            return compose(config_name=name, overrides=[*chosen, *overrides], return_hydra_config=return_hydra_config)
    except HydraException as err:
        raise ConfigError(hydra_error(err, name)) from None


def hydra_error(err: Exception, name: str) -> str:
    """Hydra's message in one line: an unknown key or option named with what is known, an override that
    does not parse with why, else its first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    unknown_key = re.fullmatch(r"Could not override '(.+)'\.", lines[0])
    if unknown_key and len(lines) > 1 and lines[1].startswith("To append"):
        added = lines[1].rpartition(" ")[2]
        return f"unknown key '{unknown_key[1]}' (see conf/{name}.yaml; '{added}' adds it)"
    unknown_option = re.search(r"Could not find '([^/']+)/([^']+)'", lines[0])
    if unknown_option and len(lines) > 1 and lines[1].startswith("Available options"):
        options = lines[2:lines.index("Config search path:")] if "Config search path:" in lines else lines[2:]
        known = [option for option in options if option != SAVED]
        return f"{unknown_option[1]}={unknown_option[2]}: no such option (known: {known})"
    if lines[0].startswith("Error parsing override") and len(lines) > 1 and not lines[1].startswith("See "):
        return f"{lines[0]}: {lines[1]} (an override reads key=value)"
    return lines[0]
