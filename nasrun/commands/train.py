"""`nasrun-train ARCH_JSON_OR_RUN_DIR [key=value ...]`: retrain an architecture from scratch for several
seeds with the final-training recipe (conf/train.yaml); mean ± std test accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.common import add_limit_options, limits_of, run_command
from nasrun.console import print_table
from nasrun.evaluation.retrain import results_table, retrain


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-train", description="Retrain an architecture from scratch with a "
                                     "final-training recipe for several seeds; report mean ± std test accuracy.")
    parser.add_argument("source", type=Path, help="a run directory or an architecture JSON (best_architecture.json)")
    parser.add_argument("overrides", nargs="*", help="key=value changes to conf/train.yaml (e.g. epochs=100 repeats=3)")
    add_limit_options(parser)
    args = parser.parse_args(argv)

    def train() -> None:
        out, result = retrain(args.source, args.overrides, limits_of(args))
        print_table(results_table(result, out))

    run_command("nasrun-train", train)


if __name__ == "__main__":
    main()
