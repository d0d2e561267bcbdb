"""Seconds per search step and peak memory of DARTS (order 1 and 2), PC-DARTS and GDAS on CPU, against a
plain reference network measured in the same run.

The setting of the DARTS paper's CIFAR-10 search: supernet C=16, 8 cells, batch 32 of 32x32 inputs,
10 classes. One step = one α update (on the α half's batch) + one weight update (on the training
half's batch), exactly what `strategy.search()` runs. Each variant runs in a fresh subprocess. Memory:
the step's peak (the child's `ru_maxrss` after the timed steps minus its value once the model and
inputs exist, i.e. above the process's baseline of Python, torch and the weights) and the whole
process's peak RSS.

Variants: `reference1` is the DARTS search network written the plain way (scripts/darts_reference.py:
every op on every edge, NCHW, no checkpointing) stepped by the same first-order step code; `darts1` /
`darts2` / `pcdarts` / `gdas` are nasrun's strategies; `pcdarts_plain_conv` is PC-DARTS without the
strided-1x1-conv work-around of nasrun/nets/conv.py (what the work-around costs). That variant is only
safe where oneDNN does not pick its AVX2 kernel (CPUs with AVX-512): on an AVX2-only CPU it corrupts the
heap, so it runs under glibc's heap checks and a crash is reported as such.
Printed ratios divide by figures measured in this invocation only: time and step memory against
`reference1`, PC-DARTS's step memory against `darts1`.

External figures, for context only (never divided by): the original DARTS code at this setting, first
order, on a 2-core x86 machine took 25.6 s/step and 6.3 GB (measured for nasrun's issue 13).

    python scripts/bench_darts.py [--steps 3] [--threads 2] [--variants reference1 darts1 pcdarts]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("reference1", "darts1", "darts2", "pcdarts", "pcdarts_plain_conv", "gdas")
HEAP_CHECKS = {"MALLOC_CHECK_": "3"}


def make_strategy(variant: str):
    from nasrun.strategies.darts import DartsSearch
    from nasrun.strategies.gdas import GdasSearch
    from nasrun.strategies.pcdarts import PCDartsSearch

    if variant in ("darts1", "reference1"):
        return DartsSearch(order=1, batch_size=32)
    if variant == "darts2":
        return DartsSearch(order=2, batch_size=32)
    if variant.startswith("pcdarts"):
        return PCDartsSearch(batch_size=32)
    return GdasSearch(batch_size=32)


def build_model(variant: str, strategy):
    import torch

    from nasrun.spaces.darts import DartsSpace

    torch.manual_seed(0)
    if variant == "reference1":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from darts_reference import PlainDartsNetwork

        return PlainDartsNetwork(C=16, num_classes=10, layers=8)
    if variant == "pcdarts_plain_conv":
        import nasrun.nets.conv as conv

        conv.needs_workaround = lambda *args: False  # every conv straight to F.conv2d / oneDNN
    model = strategy.build_supernet(DartsSpace(), (3, 32, 32), 10)
    return model.to(memory_format=torch.channels_last)


def child(variant: str, steps: int, threads: int) -> None:
    import torch

    from nasrun.spaces.darts import DartsSpace
    from nasrun.strategies.differentiable import to_device

    torch.set_num_threads(threads)
    strategy = make_strategy(variant)
    strategy.bind(DartsSpace(), 0, 1)
    model = build_model(variant, strategy)
    w_optimizer = torch.optim.SGD(model.weight_parameters(), strategy.lr, momentum=strategy.momentum,
                                  weight_decay=strategy.weight_decay)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), strategy.arch_lr, betas=strategy.arch_betas,
                                      weight_decay=strategy.arch_weight_decay)
    model.train()
    feed = (lambda t: t) if variant == "reference1" else (lambda t: to_device(t, "cpu"))  # NCHW vs as search() feeds
    generator = torch.Generator().manual_seed(0)
    batches = [(feed(torch.randn(32, 3, 32, 32, generator=generator)), torch.randint(0, 10, (32,), generator=generator))
               for _ in range(2)]
    (x, y), (x_arch, y_arch) = batches
    baseline_gb = max_rss_gb()
    times = []
    for step in range(steps + 1):  # the first step warms up allocators and is not timed
        start = time.perf_counter()
        strategy.arch_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, strategy.lr)
        strategy.weight_step(model, w_optimizer, x, y)
        if step:
            times.append(time.perf_counter() - start)
    peak_gb = max_rss_gb()
    print(json.dumps({"variant": variant, "seconds": statistics.median(times), "peak_gb": peak_gb,
                      "step_gb": peak_gb - baseline_gb}))


def max_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def run_child(variant: str, steps: int, threads: int) -> dict | str:
    """The variant's figures, or why it produced none (e.g. a heap-corruption abort)."""
    env = {**os.environ, **(HEAP_CHECKS if variant == "pcdarts_plain_conv" else {})}
    out = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps), "--threads",
                          str(threads)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"exit {out.returncode} ({tail[:80]})"
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.threads)
    import torch

    from nasrun.hardware import cpu_name

    print(f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads; C=16, 8 cells, batch 32, 32x32; "
          f"median of {args.steps} steps", flush=True)
    print(f"{'variant':19} {'s/step':>7} {'step GB':>8} {'peak GB':>8} {'time vs ref':>12} {'step mem vs ref':>16}"
          f" {'step mem vs darts1':>19}")
    results = {}
    variants = [v for v in VARIANTS if v in args.variants]  # the baselines first
    for variant in variants:
        r = results[variant] = run_child(variant, args.steps, args.threads)
        if isinstance(r, str):
            print(f"{variant:19} {r}", flush=True)
            continue
        ref, darts1 = (results.get(k) if isinstance(results.get(k), dict) else None for k in ("reference1", "darts1"))
        time_ratio = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else "-"
        mem_ratio = f"{r['step_gb'] / ref['step_gb']:.2f}x" if ref else "-"
        vs_darts = f"{r['step_gb'] / darts1['step_gb']:.2f}x" if darts1 and variant != "darts1" else "-"
        print(f"{variant:19} {r['seconds']:7.2f} {r['step_gb']:8.2f} {r['peak_gb']:8.2f} {time_ratio:>12} {mem_ratio:>16}"
              f" {vs_darts:>19}", flush=True)


if __name__ == "__main__":
    main()
