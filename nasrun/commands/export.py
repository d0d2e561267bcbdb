"""`nasrun-export RUN_DIR`: the best network as a model that takes [0, 1] images (torch.export, TorchScript,
ONNX), its weights, and the metadata a user needs (class names, input size, preprocessing)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.common import add_limit_options, limits_of, run_command
from nasrun.console import print_warning, say
from nasrun.evaluation.export import FORMATS, available_formats, export_run, why_unavailable
from nasrun.rundir import guard_output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-export", description="Export a run's best network as a model that "
                                     "takes float images in [0, 1] (NCHW) with the dataset's normalisation inside: "
                                     "torch.export (.pt2), TorchScript, ONNX, weights and architecture.json metadata.")
    parser.add_argument("source", type=Path, help="a run directory, or a best_architecture.json (with --weights)")
    parser.add_argument("--weights", type=Path, default=None, help="a state dict (default RUN_DIR/checkpoints/best_model.pt)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default SOURCE_DIR/export)")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=None,
                        help="what to write (default: every format this installation can write); a requested "
                             "format that cannot be written is an error")
    add_limit_options(parser)
    args = parser.parse_args(argv)
    out = args.out or (args.source if args.source.is_dir() else args.source.parent) / "export"

    def export() -> None:
        if args.formats is None:
            for kind in sorted(set(FORMATS) - set(available_formats())):
                say(f"nasrun-export: skipped {kind}: {why_unavailable(kind)}")
        with guard_output(args.source, out):  # the run's lock when writing into it (RUN_DIR/export)
            written, spec = export_run(args.source, args.weights, out, args.formats, limits_of(args))
        for kind, name in written.items():
            say(f"{kind:12s} {out / name}")
        if "normalize" not in (spec.get("input") or {}):
            print_warning("nasrun-export", f"{args.source} does not record its input normalisation (a run from "
                          "before nasrun saved it): the model takes inputs normalised as in training, not [0, 1] images")

    run_command("nasrun-export", export)


if __name__ == "__main__":
    main()
