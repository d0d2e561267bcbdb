"""`nasrun-report RUN_DIR ...`: (re)write the report of runs: <run dir>/report.html and plots/.

It takes no lock, so it works while a run is writing: it draws the trials of complete lines of
trials.jsonl, and each file it writes replaces the old one whole."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.common import run_command
from nasrun.console import print_error, say
from nasrun.reports.run_report import write_run_report
from nasrun.rundir import RunDir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-report", description="(Re)write the report of nasrun "
                                     "runs: <run dir>/report.html (self-contained: open it in any browser, "
                                     "offline) and the plots in <run dir>/plots/.")
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories")
    args = parser.parse_args(argv)

    def report() -> int:
        status = 0
        for run_dir in args.run_dirs:
            run = RunDir(run_dir)
            if not run.trials.exists() and not run.trials.is_symlink():
                print_error("nasrun-report", f"{run_dir} has no trials.jsonl: not a nasrun run directory")
                status = 2
                continue
            run.check()
            for path in write_run_report(run_dir):
                say(f"wrote {path}")
        return status

    run_command("nasrun-report", report)


if __name__ == "__main__":
    main()
