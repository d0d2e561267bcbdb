"""What every command shares: running its body with one-line errors and the right exit code."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from hydra.errors import HydraException

from nasrun.console import print_error
from nasrun.errors import ConfigError, NasrunError


def compose_run_config(overrides: Sequence[str], return_hydra_config: bool = False):
    """The config `nasrun` would compose from `overrides` (a one-line ConfigError for a bad one)."""
    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module(config_module="nasrun.conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    except HydraException as err:
        raise ConfigError(str(err).splitlines()[0]) from None


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
