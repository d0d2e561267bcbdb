"""`nasrun-compare SWEEP_DIR`: aggregate a multirun sweep per strategy (nasrun/reports/compare.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from nasrun.commands.common import run_command
from nasrun.reports.compare import __doc__ as compare_doc
from nasrun.reports.compare import compare, comparison_table, verdict_lines
from nasrun.rundir import RunDir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-compare", description=compare_doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a multirun sweep folder (e.g. outputs/multirun/DATE/TIME)")
    parser.add_argument("--no-plot", action="store_true", help="skip anytime.png")
    args = parser.parse_args(argv)

    def compare_sweep() -> None:
        comparison = compare(args.sweep_dir, plot=not args.no_plot)
        console = Console(width=max(Console().width, 120))
        console.print(comparison_table(comparison))
        test = comparison["test"]
        if comparison["pairs"]:
            console.print(f"{test['name']} per pair ({test['adjustment']}-adjusted over the pairs, "
                          f"alpha {test['alpha']}):", highlight=False)
        for line in verdict_lines(comparison):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        written = [str(RunDir(args.sweep_dir).comparison), comparison["page"], comparison.get("plot")]
        console.print("wrote " + ", ".join(p for p in written if p), highlight=False, soft_wrap=True)

    run_command("nasrun-compare", compare_sweep)


if __name__ == "__main__":
    main()
