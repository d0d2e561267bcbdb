"""`nasrun-export RUN_DIR`: the best network as architecture JSON + weights, TorchScript and ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.common import add_limit_options, limits_of, run_command
from nasrun.console import console
from nasrun.evaluation.export import FORMATS, available_formats, export_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-export", description="Export a run's best network: architecture "
                                     "JSON + weights, TorchScript and ONNX.")
    parser.add_argument("source", type=Path, help="a run directory, or a best_architecture.json (with --weights)")
    parser.add_argument("--weights", type=Path, default=None, help="a state dict (default RUN_DIR/checkpoints/best_model.pt)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default SOURCE_DIR/export)")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=None,
                        help="default: every format whose package is installed (onnx needs `onnx`)")
    add_limit_options(parser)
    args = parser.parse_args(argv)
    out = args.out or (args.source if args.source.is_dir() else args.source.parent) / "export"

    def export() -> None:
        formats = args.formats or available_formats()
        for kind, name in export_run(args.source, args.weights, out, formats, limits_of(args)).items():
            console.print(f"{kind:12s} {out / name}", highlight=False, soft_wrap=True)

    run_command("nasrun-export", export)


if __name__ == "__main__":
    main()
