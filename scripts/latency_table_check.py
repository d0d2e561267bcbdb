"""How well a `nasrun-latency-table` predicts whole-network latency, and how much time it saves.

Builds a table for a macro space at an input size, then for N sampled architectures compares the
predicted latency with a measured one (same Timer, batch 1). Prints the rank correlation, the median
predicted/measured ratio, and the time to predict vs. to measure all N (the speed-up ratio).

    python scripts/latency_table_check.py --input 3,32,32 --samples 20 --threads 1

The figures go to results/latency_table.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from scipy.stats import spearmanr

from nasrun.assessment.latency_table import LatencyTable
from nasrun.assessment.metrics import example_input, measure_latency_ms
from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from results_file import write_results

SPACE = ["search_space=macro", "search_space.min_layers=2", "search_space.max_layers=6",
         "search_space.ops=[conv3x3,conv5x5,sepconv3x3,maxpool3x3,identity]", "search_space.widths=[16,32,64]",
         "search_space.stem_width=16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="3,32,32")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.input.split(","))
    space = build_components(compose_run_config(SPACE), ["search_space"]).search_space
    start = time.perf_counter()
    table = LatencyTable.measure(space, shape, 10, min_seconds=args.min_seconds)
    build_seconds = time.perf_counter() - start
    predict = table.predictor(space, shape)
    archs = [space.sample(random.Random(args.seed + i)) for i in range(args.samples)]
    start = time.perf_counter()
    predicted = [predict(a) for a in archs]
    predict_seconds = time.perf_counter() - start
    start = time.perf_counter()
    measured = [measure_latency_ms(space.build(a, shape, 10), example_input(shape), 3, args.min_seconds) for a in archs]
    measure_seconds = time.perf_counter() - start
    ratios = [p / m for p, m in zip(predicted, measured)]
    setting = (f"table: {len(table.entries)} parts in {build_seconds:.1f}s on {table.info['device_name']}, "
               f"input {list(shape)}, {args.threads} thread(s)")
    rows = [["Spearman ρ (predicted, measured)", f"{spearmanr(predicted, measured).statistic:.3f}"],
            ["predicted / measured, median", f"{statistics.median(ratios):.2f}"],
            ["predicted / measured, range", f"{min(ratios):.2f}..{max(ratios):.2f}"],
            ["predicting all, ms", f"{predict_seconds * 1000:.1f}"],
            ["measuring all, s", f"{measure_seconds:.1f}"],
            ["prediction speed-up", f"{measure_seconds / max(predict_seconds, 1e-9):,.0f}x"]]
    print(setting)
    for what, value in rows:
        print(f"{what:36} {value}")
    write_results("latency_table", "Latency lookup table: predicted against measured latency",
                  [(f"{setting}; {args.samples} sampled macro architectures, batch 1", ["measure", "value"], rows)])


if __name__ == "__main__":
    main()
