"""`nasrun-resume RUN_DIR` (or `nasrun resume=RUN_DIR`): continue a killed run in its own run directory,
from its saved config and checkpoints (nasrun/run/checkpoint.py says how)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.common import run_command
from nasrun.config import load_saved_config
from nasrun.console import say
from nasrun.errors import NasrunError
from nasrun.experiment import run_experiment
from nasrun.rundir import RunDir
from nasrun.state import discard_held_logs


def resume_run(run_dir: Path, show_progress: bool | None = None) -> dict | None:
    """Continue the run in `run_dir`; None (and nothing written) when it had already finished. It is held
    (lock, no link leading out) before anything is read; log records wait until its saved state has been
    read back, so a refused resume changes no file."""
    run = RunDir(Path(run_dir).resolve())
    if not run.path.is_dir():
        raise NasrunError(f"{run.path} is not a directory: RUN_DIR must be a nasrun run directory")
    with run.writing():
        cfg = load_saved_config(run.path)
        if run.finished():
            return None
        run.attach_log(hold=True)
        progress = cfg.get("progress", True) if show_progress is None else show_progress
        try:
            return run_experiment(cfg, run.path, show_progress=progress, resume=True)
        finally:
            discard_held_logs()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-resume", description="Continue an interrupted nasrun run "
                                     "in its own run directory, from its saved config and checkpoints.")
    parser.add_argument("run_dir", type=Path, help="the run directory of the interrupted run (or a multirun "
                        "sweep directory: every job in it is resumed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    def resume_all() -> None:
        for job in RunDir(args.run_dir).sweep_jobs():
            if resume_run(job.path, show_progress=False if args.no_progress else None) is None:
                say(f"{job.path} has already finished (summary.json exists); nothing to resume")

    run_command("nasrun-resume", resume_all)


if __name__ == "__main__":
    main()
