"""`nasrun-latency-table [overrides]`: measure the macro space's per-part latency table on this device."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.assessment.latency_table import LatencyTable
from nasrun.assessment.latency_table import __doc__ as latency_doc
from nasrun.build import build_components
from nasrun.commands.common import compose_run_config, run_command
from nasrun.console import console, say


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-latency-table", description=latency_doc.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="nasrun config overrides, e.g. dataset=cifar10 hardware=cpu")
    parser.add_argument("--out", type=Path, default=Path("latency_table.json"))
    parser.add_argument("--min-seconds", type=float, default=0.05, help="measuring time per part (median)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    def measure() -> None:
        cfg = compose_run_config(args.overrides)
        parts = build_components(cfg, ["hardware", "search_space", "dataset"])
        hardware, space = parts.hardware, parts.search_space
        hardware.apply()
        data = parts.dataset.load()
        with console.status("measuring") as status:
            table = LatencyTable.measure(space, data.input_shape, data.num_classes, hardware.device, args.warmup,
                                         args.min_seconds, lambda n, key: status.update(f"measured {n}: {key}"))
        table.save(args.out)
        say(f"{len(table.entries)} parts measured on {table.info['device_name']} ({hardware.device}) "
            f"at input {list(data.input_shape)}; written {args.out}\n"
            f"use it with: nasrun metrics.latency=table metrics.latency_table={args.out.resolve()}")

    run_command("nasrun-latency-table", measure)


if __name__ == "__main__":
    main()
