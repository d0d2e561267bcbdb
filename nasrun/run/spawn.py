"""Several processes for one one-shot search: starting them (`hardware.devices=N`) and what every rank
but 0 does (the same supernet training and search as rank 0's Runner, writing nothing).
The collectives they share are in `nasrun.distributed`."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import torch.multiprocessing

from nasrun.distributed import current, environment
from nasrun.errors import ConfigError, NasrunError
from nasrun.rundir import RunDir, load_checkpoint
from nasrun.run.ranks import SPAWNED, current_rank
from nasrun.run.runner import Experiment
from nasrun.strategies.base import SearchContext

log = logging.getLogger("nasrun")


def launch(fn, nprocs: int, *args) -> None:
    """Run `fn(*args)` in `nprocs` fresh processes that form one group (rank 0 .. nprocs-1) on this machine."""
    port = free_port()
    try:
        torch.multiprocessing.spawn(_rank_main, args=(nprocs, port, fn, args), nprocs=nprocs, join=True)
    except torch.multiprocessing.ProcessRaisedException as err:
        last = [line for line in str(err).strip().splitlines() if line.strip()][-1]
        raise NasrunError(f"distributed run: rank {err.error_index} failed: {last.strip()}") from None
    except torch.multiprocessing.ProcessExitedException as err:
        raise NasrunError(f"distributed run: rank {err.error_index} died ({err})") from None


def _rank_main(rank: int, world_size: int, port: int, fn, args) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **{SPAWNED: "1"})
    fn(*args)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the CLI path ---------------------------------------------------------------------------------
def should_spawn(hardware, strategy, estimator) -> bool:
    """True when `hardware.devices` > 1 asks for processes this process must start itself."""
    if int(hardware.devices) <= 1 or environment() is not None:
        return False
    require_supernet(strategy, estimator)
    return True


def require_supernet(strategy, estimator) -> None:
    if not (strategy.one_shot or estimator.trains_supernet):
        raise ConfigError("several processes (hardware.devices > 1 or torchrun) train the supernet of a one-shot "
                          "strategy or of estimator=weight_sharing; for parallel trials use executor=processes "
                          "or executor=ray")


def run_spawned(experiment, cfg, run_dir: str | Path, show_progress: bool, resume: bool = False) -> dict:
    """`hardware.devices=N`: run the experiment in N processes; rank 0's summary is the result."""
    log.info("distributed one-shot search: %d processes", int(cfg.hardware.devices))
    launch(_spawned_experiment, int(cfg.hardware.devices), experiment, cfg, str(run_dir), show_progress, resume)
    return RunDir(run_dir).read_summary()


def _spawned_experiment(experiment, cfg, run_dir: str, show_progress: bool, resume: bool) -> None:
    if current_rank() == 0:
        RunDir(run_dir).attach_log(console_warnings=False)
    experiment(cfg, run_dir, show_progress=show_progress and current_rank() == 0, resume=resume)


class FollowerContext(SearchContext):
    """A non-zero rank's search context: reads the run's saved search state (resume), writes nothing."""

    def __init__(self, space, data, hardware, run_dir, seed):
        super().__init__(space, data, hardware, None, seed, None)
        self.read_from = RunDir(run_dir).search_state

    def load_state(self) -> dict | None:
        if not self.read_from.exists():
            return None
        return load_checkpoint(self.read_from)


def follow(experiment: Experiment, run_dir) -> dict:
    """What every rank but 0 does: its share of the supernet training (the estimator's `bind`, writing
    nothing) and of a one-shot search, in the order rank 0's Runner does them."""
    space, strategy, estimator, seed = experiment.space, experiment.strategy, experiment.estimator, experiment.seed
    data, hardware = experiment.data, experiment.hardware
    if estimator.trains_supernet:
        estimator.bind(space, data, hardware, run_dir, seed)
    if not strategy.one_shot:
        return {"rank": current().rank}
    strategy.bind(space, seed, experiment.budget.trials)
    arch, _ = strategy.search(FollowerContext(space, data, hardware, run_dir, seed))
    return {"rank": current().rank, "arch": space.to_json(arch)}
