"""`nasrun-benchmark RUN_DIR [--pareto]`: accuracy per split, costs and robustness of the architectures a
run found (nasrun/evaluation/benchmark.py says how)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.common import add_limit_options, limits_of, run_command
from nasrun.console import print_table, say
from nasrun.evaluation.benchmark import EPSILONS, SIGMAS, RunBenchmark, results_tables
from nasrun.evaluation.benchmark import __doc__ as benchmark_doc
from nasrun.rundir import RunDir, atomic_write_json, guard_output


def floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-benchmark", description=benchmark_doc.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished nasrun run directory")
    parser.add_argument("overrides", nargs="*", help="optional key=value changes (e.g. hardware.device=cpu)")
    parser.add_argument("--pareto", action="store_true", help="benchmark every Pareto-front architecture")
    parser.add_argument("--sigmas", type=floats, default=list(SIGMAS), help="Gaussian noise levels, e.g. 0,0.1,0.5")
    parser.add_argument("--epsilons", type=floats, default=list(EPSILONS), help="FGSM step sizes, e.g. 0,0.01,0.1")
    parser.add_argument("--latency-batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/benchmark.json")
    add_limit_options(parser)
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after the flags

    def benchmark() -> None:
        out = args.out or RunDir(args.run_dir).benchmark
        with guard_output(args.run_dir, out):  # the run's lock when benchmark.json goes into it
            bench = RunBenchmark(args.run_dir.resolve(), args.overrides, limits_of(args))
            results = [bench.benchmark(t["trial"], t["arch"], args.sigmas, args.epsilons, args.latency_batch)
                       for t in bench.targets(args.pareto)]
            atomic_write_json(out, {"run_dir": str(args.run_dir.resolve()), "device": bench.hardware.device,
                                    "results": results})
        for table in results_tables(results):
            print_table(table)
        say(f"written {out}")

    run_command("nasrun-benchmark", benchmark)


if __name__ == "__main__":
    main()
