"""What every command shares: running its body with one-line errors and the right exit code."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from nasrun.console import print_error
from nasrun.errors import ConfigError, NasrunError
from nasrun.nets.size import NetworkLimits


def plain_experiment(overrides: Sequence[str]) -> list[str]:
    """`+experiment=NAME` read as `experiment=NAME`. config.yaml declares the (empty) experiment group
    before `scale`, so that `scale=tiny` still shrinks a recipe; Hydra refuses `+` for a declared group."""
    return [item[1:] if item.startswith("+experiment=") else item for item in overrides]


def compose_run_config(overrides: Sequence[str], return_hydra_config: bool = False):
    """The config `nasrun` would compose from `overrides` (a one-line ConfigError for a bad one)."""
    from nasrun.config import compose_config  # here: `nasrun --help` imports no component code

    return compose_config("config", plain_experiment(overrides), return_hydra_config=return_hydra_config)


def run_command(program: str, body: Callable[[], int | None]) -> None:
    """Run `body`; exit with its return code (0 for None). A NasrunError becomes one line and its exit code
    (a full traceback with HYDRA_FULL_ERROR=1); Ctrl-C exits 130. What was written before stays written."""
    try:
        code = body()
    except NasrunError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print_error(program, str(err))
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print_error(program, "interrupted; what was finished so far is kept (run it again to continue)")
        sys.exit(130)
    sys.exit(code or 0)


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """--max-params, --max-memory-gb, --max-modules: the size limits of a network rebuilt from a file."""
    defaults = NetworkLimits()
    group = parser.add_argument_group("network size limits", "a network over them is refused before it is "
                                      "built (nasrun/nets/size.py says why these defaults)")
    group.add_argument("--max-params", type=float, default=defaults.max_params,
                       help=f"most parameters (default {defaults.max_params:g})")
    group.add_argument("--max-memory-gb", type=float, default=defaults.max_memory_gb,
                       help=f"most GiB for weights, gradients and one image's activations (default {defaults.max_memory_gb:g})")
    group.add_argument("--max-modules", type=float, default=defaults.max_modules,
                       help=f"most modules (layers) (default {defaults.max_modules:,})")


def limits_of(args: argparse.Namespace) -> NetworkLimits:
    """The limits given by `add_limit_options`' flags (a ConfigError for a value that is not positive)."""
    try:
        return NetworkLimits(args.max_params, args.max_memory_gb, args.max_modules)
    except ConfigError as err:
        raise ConfigError(f"--{str(err).replace('_', '-')}") from None
