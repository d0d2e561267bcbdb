"""What every command shares: running its body with one-line errors and the right exit code."""

from __future__ import annotations

import os
import sys
from typing import Callable

from nasrun.console import print_error
from nasrun.errors import NasrunError


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
