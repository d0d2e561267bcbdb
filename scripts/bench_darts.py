"""Seconds per search step and peak memory of DARTS (order 1 and 2), PC-DARTS and GDAS on CPU.

The setting of the DARTS paper's CIFAR-10 search: supernet C=16, 8 cells, batch 32 of 32x32 inputs,
10 classes. One step = one α update (on the α half's batch) + one weight update (on the training
half's batch), exactly what `strategy.search()` runs. Each variant runs in a fresh subprocess (peak RSS
is the child's `ru_maxrss`, the whole process: Python, torch and the step). Printed: median s/step,
peak RSS, and ratios against the original DARTS implementation's figures at that setting on 2 CPU
cores (order 1: 11 s/step, 5.9 GB; order 2: 40 s/step, 7.5 GB) and against DARTS order 1 measured in
this run. Goals: order 1 <= 0.7x the time and <= 0.5x the memory of the original; PC-DARTS >= 3x less
memory than DARTS.

    python scripts/bench_darts.py [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("darts1", "darts2", "pcdarts", "gdas")
ORIGINAL = {"darts1": (11.0, 5.9), "darts2": (40.0, 7.5)}  # s/step, GB peak RSS (original DARTS code, 2 cores)


def make_strategy(variant: str):
    from nasrun.strategies.darts import DartsSearch
    from nasrun.strategies.gdas import GdasSearch
    from nasrun.strategies.pcdarts import PCDartsSearch

    if variant == "darts1":
        return DartsSearch(order=1, batch_size=32)
    if variant == "darts2":
        return DartsSearch(order=2, batch_size=32)
    if variant == "pcdarts":
        return PCDartsSearch(batch_size=32)
    return GdasSearch(batch_size=32)


def child(variant: str, steps: int, threads: int) -> None:
    import torch

    from nasrun.spaces.darts import DartsSpace
    from nasrun.strategies.differentiable import to_device

    torch.set_num_threads(threads)
    strategy = make_strategy(variant)
    strategy.bind(DartsSpace(), 0, 1)
    torch.manual_seed(0)
    model = strategy.build_supernet(DartsSpace(), (3, 32, 32), 10).to(memory_format=torch.channels_last)
    w_optimizer = torch.optim.SGD(model.weight_parameters(), strategy.lr, momentum=strategy.momentum,
                                  weight_decay=strategy.weight_decay)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), strategy.arch_lr, betas=strategy.arch_betas,
                                      weight_decay=strategy.arch_weight_decay)
    model.train()
    times = []
    for step in range(steps + 1):  # the first step warms up allocators and is not timed
        x, x_arch = (to_device(torch.randn(32, 3, 32, 32), "cpu") for _ in range(2))  # as search() feeds them
        y, y_arch = torch.randint(0, 10, (32,)), torch.randint(0, 10, (32,))
        start = time.perf_counter()
        strategy.arch_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, strategy.lr)
        strategy.weight_step(model, w_optimizer, x, y)
        if step:
            times.append(time.perf_counter() - start)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux
    print(json.dumps({"variant": variant, "seconds": statistics.median(times), "peak_gb": peak_gb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.threads)
    print(f"C=16, 8 cells, batch 32, 32x32, CPU, {args.threads} threads, median of {args.steps} steps", flush=True)
    print(f"{'variant':10} {'s/step':>8} {'peak GB':>8} {'time vs orig':>13} {'mem vs orig':>12} {'mem vs darts1':>14}")
    results = {}
    for variant in args.variants:  # rows print as each variant finishes (darts1 first: the baseline)
        out = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(args.steps),
                              "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        r = results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        original, base = ORIGINAL.get(variant), results.get("darts1")
        time_ratio = f"{r['seconds'] / original[0]:.2f}x" if original else "-"
        memory_ratio = f"{r['peak_gb'] / original[1]:.2f}x" if original else "-"
        vs_darts = f"{r['peak_gb'] / base['peak_gb']:.2f}x" if base else "-"
        print(f"{variant:10} {r['seconds']:8.2f} {r['peak_gb']:8.2f} {time_ratio:>13} {memory_ratio:>12} {vs_darts:>14}",
              flush=True)


if __name__ == "__main__":
    main()
