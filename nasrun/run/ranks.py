"""Which process of a distributed run this is, read from the environment that torchrun or nasrun's own
launcher (nasrun/run/spawn.py) gives it; torch-free, so a run that stays in one process never loads
torch.distributed to ask."""

from __future__ import annotations

import os

SPAWNED = "NASRUN_SPAWNED"  # set in the processes `launch` starts: the process that started them holds the lock


def current_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def takes_run_lock() -> bool:
    """Whether this process holds the run directory's lock while it runs: yes, unless it is a rank other
    than 0, or a rank started by `launch` (whose parent holds it)."""
    return current_rank() == 0 and SPAWNED not in os.environ
