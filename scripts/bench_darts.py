"""Seconds per search step and peak memory of DARTS (order 1 and 2), PC-DARTS and GDAS on CPU, against a
plain reference network measured in the same run.

The setting of the DARTS paper's CIFAR-10 search: supernet C=16, 8 cells, 32x32 inputs, 10 classes,
batch 32 (`--batch`). Every nasrun variant is built from its packaged config (`strategy=darts|pcdarts|
gdas` plus the overrides in VARIANTS, through build_components), so it measures what `nasrun` runs.
One step = one α update (on the α half's batch) + one weight update (on the training half's batch),
exactly what `strategy.search()` runs. Each variant runs in a fresh subprocess (with the OpenMP wait
policy `nasrun` sets, nasrun/machine.py): one warm-up step, the timed steps, then one more step whose
memory is measured.

Memory. `step GB` is the peak of that last step above the memory live before it, i.e. above the
process's baseline of Python, torch, the weights and the optimiser state: glibc is told to return every
freed block of 64 KiB or more to the system and to trim its heap (mallopt, malloc_trim) so that resident
memory follows live memory, and the kernel's resident high-water mark is reset right before the step
(/proc/self/clear_refs); Linux with glibc only. This is the figure a GPU's caching allocator would
report as the step's peak. `peak GB` is the whole process's peak RSS under glibc's default malloc,
which keeps freed memory in its arenas and so can stand well above what a step needs.

Variants: `reference1` is the DARTS search network written the plain way (scripts/darts_reference.py:
every op on every edge, NCHW, no recomputation) stepped the plain way (`plain_step`: the original DARTS
code's first-order step, `loss.backward()` over all parameters for each update); `darts1` /
`darts2` / `pcdarts` / `gdas` are nasrun's strategies at their configs' `checkpoint` (auto: the `mode`
column says what it chose here); the `_edges` / `_cells` / `_none` variants set the recomputation;
`pcdarts_plain_conv` is PC-DARTS without the
strided-1x1-conv work-around of nasrun/nets/conv.py (what the work-around costs). That variant is only
safe where oneDNN does not pick its AVX2 kernel (CPUs with AVX-512): on an AVX2-only CPU it corrupts the
heap, so it runs under glibc's heap checks and a crash is reported as such.
`--paper-batches` measures the PC-DARTS paper's claim (batch 256 of PC-DARTS fits where DARTS fits 64):
the reference and DARTS at batch 64, PC-DARTS at 256, each of nasrun's without recomputation (the
papers' own execution) and with edge recomputation.
`--original PATH` adds `original1`: the original DARTS code itself (a checkout of
github.com/quark0/darts; its `cnn/model_search.py` and `cnn/architect.py` are imported from PATH, never
copied here), stepped as its `train_search.py` steps it at first order (`architect.step(...,
unrolled=False)`, then the weight update), on NCHW inputs; its `.cuda()` calls are no-ops on a machine
without CUDA. It runs first, and the ratios then divide by it too.
Printed ratios divide by figures measured in this invocation only: time and step memory against
`reference1` (and `original1` when given), step memory against nasrun's first-order DARTS at the same
recomputation (`darts1`, `darts1_edges`, `darts1_cells` or `darts1_none`).

    python scripts/bench_darts.py [--steps 3] [--threads 2] [--batch 32] [--variants reference1 darts1 pcdarts]
    python scripts/bench_darts.py --rounds 3 --variants reference1 darts1   # a drifting machine: paired rounds
    python scripts/bench_darts.py --original ~/src/darts --variants reference1 darts1 darts1_edges pcdarts gdas
    python scripts/bench_darts.py --paper-batches --steps 1

The table goes to results/darts_step.md (results/pcdarts_memory.md with --paper-batches).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_file import write_results  # noqa: E402

VARIANTS = {  # variant: (strategy config, overrides); every nasrun variant runs its config's `checkpoint` unless named
    "original1": ("darts", ["strategy.order=1"]),
    "reference1": ("darts", ["strategy.order=1"]),
    "darts1": ("darts", ["strategy.order=1"]),
    "darts1_edges": ("darts", ["strategy.order=1", "strategy.checkpoint=edges"]),
    "darts1_cells": ("darts", ["strategy.order=1", "strategy.checkpoint=cells"]),
    "darts1_none": ("darts", ["strategy.order=1", "strategy.checkpoint=none"]),
    "darts2": ("darts", ["strategy.order=2"]),
    "pcdarts": ("pcdarts", []),
    "pcdarts_edges": ("pcdarts", ["strategy.checkpoint=edges"]),
    "pcdarts_cells": ("pcdarts", ["strategy.checkpoint=cells"]),
    "pcdarts_none": ("pcdarts", ["strategy.checkpoint=none"]),
    "pcdarts_plain_conv": ("pcdarts", []),
    "gdas": ("gdas", []),
}
DEFAULT_VARIANTS = ("reference1", "darts1", "darts1_edges", "darts2", "pcdarts", "pcdarts_edges",
                    "pcdarts_plain_conv", "gdas")
BASELINES = ("original1", "reference1")  # stepped the original code's way, on NCHW inputs
# The PC-DARTS paper's claim, in its own terms: batch 256 of PC-DARTS fits where DARTS fits batch 64.
PAPER_BATCHES = (("reference1", 64), ("darts1_none", 64), ("pcdarts_none", 256), ("darts1_edges", 64),
                 ("pcdarts_edges", 256))
HEAP_CHECKS = {"MALLOC_CHECK_": "3"}
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)


def make_components(variant: str, batch: int):
    """The search space and strategy `nasrun strategy=<config> ...` would build, at `batch`."""
    from nasrun.build import build_components
    from nasrun.commands.common import compose_run_config

    option, overrides = VARIANTS[variant]
    cfg = compose_run_config([f"strategy={option}", *overrides, f"strategy.batch_size={batch}"])
    parts = build_components(cfg, ["search_space", "strategy"])
    return parts.search_space, parts.strategy


def build_original(path: str, strategy):
    """The original DARTS search network and its Architect, imported from a checkout at `path`."""
    import argparse as arguments

    import torch
    from torch import nn

    sys.path.insert(0, os.path.join(os.path.abspath(os.path.expanduser(path)), "cnn"))
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda tensor, *args, **kwargs: tensor  # its alphas are created with .cuda()
    from architect import Architect
    from model_search import Network

    model = Network(strategy.C, 10, strategy.layers, nn.CrossEntropyLoss())
    settings = strategy.settings
    args = arguments.Namespace(momentum=settings.momentum, weight_decay=settings.weight_decay,
                               arch_learning_rate=settings.arch_lr, arch_weight_decay=settings.arch_weight_decay)
    return model, Architect(model, args)


def original_step(model, architect, w_optimizer, x, y, x_arch, y_arch, lr: float, grad_clip: float) -> None:
    """One step as the original `train_search.py` takes it at first order."""
    import torch

    architect.step(x, y, x_arch, y_arch, lr, w_optimizer, unrolled=False)
    w_optimizer.zero_grad()
    model._loss(x, y).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    w_optimizer.step()


def build_model(variant: str, space, strategy):
    import torch

    torch.manual_seed(0)
    if variant == "reference1":
        from darts_reference import PlainDartsNetwork

        return PlainDartsNetwork(C=strategy.C, num_classes=10, layers=strategy.layers)
    if variant == "pcdarts_plain_conv":
        import nasrun.nets.conv as conv

        conv.needs_workaround = lambda *args: False  # every conv straight to F.conv2d / oneDNN
    model = strategy.build_supernet(space, (3, 32, 32), 10)
    return model.to(memory_format=torch.channels_last)


def child(variant: str, steps: int, threads: int, batch: int, original: str | None = None) -> None:
    from nasrun.machine import prepare_openmp

    prepare_openmp()  # every variant under the OpenMP wait policy `nasrun` runs with, set before torch loads
    import torch

    from nasrun.hardware import Hardware
    from nasrun.supernets.bilevel import Optimisers, to_device

    torch.set_num_threads(threads)
    space, strategy = make_components(variant, batch)
    strategy.bind(space, 0, 1)
    settings, trainer = strategy.settings, strategy.trainer()
    mode = "-"
    if variant == "original1":
        torch.manual_seed(0)
        model, architect = build_original(original, strategy)
        w_optimizer = torch.optim.SGD(model.parameters(), settings.lr, momentum=settings.momentum,
                                      weight_decay=settings.weight_decay)
    else:
        model = build_model(variant, space, strategy)
        if variant != "reference1":
            mode = strategy.choose_checkpoint(model, (3, 32, 32), Hardware("cpu", threads=threads))
        optimisers = Optimisers.for_model(model, settings)
        w_optimizer, arch_optimizer = optimisers.weights, optimisers.arch
    model.train()
    feed = (lambda t: t) if variant in BASELINES else (lambda t: to_device(t, "cpu"))  # NCHW vs as search() feeds
    generator = torch.Generator().manual_seed(0)
    batches = [(feed(torch.randn(batch, 3, 32, 32, generator=generator)),
                torch.randint(0, 10, (batch,), generator=generator)) for _ in range(2)]
    (x, y), (x_arch, y_arch) = batches

    def step():
        if variant == "original1":
            return original_step(model, architect, w_optimizer, x, y, x_arch, y_arch, settings.lr, settings.grad_clip)
        if variant == "reference1":
            return plain_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, settings.grad_clip)
        trainer.arch_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, settings.lr)
        trainer.weight_step(model, w_optimizer, x, y)

    times = []
    for i in range(steps + 1):  # the first step warms up allocators and is not timed
        start = time.perf_counter()
        step()
        if i:
            times.append(time.perf_counter() - start)
    peak_gb = max_rss_gb()  # the whole process, under glibc's default (retaining) malloc
    print(json.dumps({"variant": variant, "batch": batch, "mode": mode, "seconds": statistics.median(times),
                      "peak_gb": peak_gb, "step_gb": live_step_peak_gb(step)}))


def plain_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, grad_clip) -> None:
    """The original DARTS code's first-order step: `loss.backward()` over every parameter for the α update,
    then again for the weight update (each pass computes both gradients; the other optimiser ignores one)."""
    import torch
    import torch.nn.functional as F

    arch_optimizer.zero_grad()
    F.cross_entropy(model(x_arch), y_arch).backward()
    arch_optimizer.step()
    w_optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    torch.nn.utils.clip_grad_norm_(model.weight_parameters(), grad_clip)
    w_optimizer.step()


def max_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def live_step_peak_gb(step) -> float:
    """The peak of one more step's memory above what is live before it: glibc is set to give every freed
    block of 64 KiB or more back to the system (mmap threshold 64 KiB, trim threshold 0, then malloc_trim),
    so that resident memory follows live memory, and the kernel's resident high-water mark is reset just
    before the step (Linux: /proc/self/clear_refs). Default glibc keeps freed memory in its arenas, so
    the untuned process's peak RSS (`peak_gb`) overstates, by up to 2x here, what a step needs."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
    libc.mallopt(M_TRIM_THRESHOLD, 0)
    gc.collect()
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset VmHWM to the current resident size
    baseline = proc_status_kib("VmRSS")
    step()
    return (proc_status_kib("VmHWM") - baseline) / 1024**2


def proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))


def run_child(variant: str, steps: int, threads: int, batch: int, original: str | None = None) -> dict | str:
    """The variant's figures, or why it produced none (e.g. a heap-corruption abort)."""
    env = {**os.environ, **(HEAP_CHECKS if variant == "pcdarts_plain_conv" else {})}
    out = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps), "--threads",
                          str(threads), "--batch", str(batch), *(["--original", original] if original else [])],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"exit {out.returncode} ({tail[:80]})"
    return json.loads(out.stdout.strip().splitlines()[-1])


def darts_counterpart(variant: str) -> str | None:
    """nasrun's first-order DARTS at the same recomputation as `variant` (None for DARTS-1 and the reference)."""
    if variant.startswith(("darts1", "reference", "original")):
        return None
    return "darts1" + next((suffix for suffix in ("_edges", "_cells", "_none") if variant.endswith(suffix)), "")


COLUMNS = ["variant", "batch", "mode", "s/step", "step GB", "peak GB", "time vs ref", "step mem vs ref",
           "time vs orig", "step mem vs orig", "step mem vs DARTS-1 (same recomputation)"]


def paired_ratio(rounds: list[dict], row: tuple[str, int], base: str | None, key: str) -> str:
    """The median over rounds of row's `key` divided by that of `base` (the first row of that variant above
    it) in the same round: pairing keeps the ratio meaningful while the machine's speed drifts."""
    ratios = []
    for results in rounds:
        value = results.get(row)
        other = next((v for (name, _), v in results.items() if name == base and isinstance(v, dict)), None)
        if isinstance(value, dict) and other is not None and base != row[0]:
            ratios.append(value[key] / other[key])
    return f"{statistics.median(ratios):.2f}x" if ratios else "-"


def measure_rows(rows: list[tuple[str, int]], steps: int, threads: int, original: str | None = None,
                 rounds: int = 1) -> list[list]:
    """Run each (variant, batch) in a fresh process, all rows in turn, `rounds` times; return one table row
    each: its median figures, and its ratios to the baselines and to its DARTS counterpart (the first such
    row above it), each the median of the ratios taken within a round."""
    measured = []
    for number in range(1, rounds + 1):
        results = {}
        for variant, batch in rows:
            r = results[variant, batch] = run_child(variant, steps, threads, batch, original)
            figures = r if isinstance(r, str) else f"{r['seconds']:.2f} s/step, {r['step_gb']:.2f} step GB"
            print(f"round {number}/{rounds}: {variant} (batch {batch}): {figures}", flush=True)
        measured.append(results)
    table = []
    for row in rows:
        values = [results[row] for results in measured]
        failed = next((v for v in values if isinstance(v, str)), None)
        if failed:
            table.append([*row, failed, *[""] * (len(COLUMNS) - 3)])
            continue
        median = {key: statistics.median(v[key] for v in values) for key in ("seconds", "step_gb", "peak_gb")}
        counterpart = darts_counterpart(row[0])
        vs_darts = f"{paired_ratio(measured, row, counterpart, 'step_gb')} ({counterpart})" if counterpart else "-"
        table.append([*row, values[0]["mode"], f"{median['seconds']:.2f}", f"{median['step_gb']:.2f}",
                      f"{median['peak_gb']:.2f}", *(paired_ratio(measured, row, base, key)
                                                    for base in ("reference1", "original1")
                                                    for key in ("seconds", "step_gb")), vs_darts])
    print(" | ".join(COLUMNS))
    for line in table:
        print(" | ".join(str(cell) for cell in line), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run all variants in turn this many times: medians, ratios paired within a round")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--paper-batches", action="store_true",
                        help="the PC-DARTS claim instead: " + ", ".join(f"{v} at batch {b}" for v, b in PAPER_BATCHES))
    parser.add_argument("--original", metavar="PATH", help="a checkout of github.com/quark0/darts: adds original1")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.threads, args.batch, args.original)
    import torch

    from nasrun.hardware import cpu_name

    if args.original and not os.path.isfile(os.path.join(os.path.expanduser(args.original), "cnn", "model_search.py")):
        sys.exit(f"--original {args.original}: no cnn/model_search.py there (a checkout of github.com/quark0/darts)")
    variants = [*(["original1"] if args.original else []), *args.variants]
    rows = list(PAPER_BATCHES) if args.paper_batches else \
        [(v, args.batch) for v in VARIANTS if v in variants]  # the baselines first
    setting = (f"{args.threads} threads; C=16, 8 cells, 32x32; median of {args.steps} steps"
               + (f"; {args.rounds} rounds of all variants in turn, medians over rounds" if args.rounds > 1 else ""))
    print(f"{cpu_name()}, torch {torch.__version__}, {setting}", flush=True)
    table = measure_rows(rows, args.steps, args.threads, args.original, args.rounds)
    notes = ("`mode`: the recomputation the step ran with; `step GB`: the step's peak memory above the process's "
             "baseline; `peak GB`: the whole process's peak RSS under glibc's default malloc (see the script's "
             "docstring). Ratios divide by rows of this run only (`orig`: the original DARTS code, with --original); "
             "with several rounds, each ratio is the median of the ratios within one round.")
    if args.paper_batches:
        write_results("pcdarts_memory", "PC-DARTS at batch 256 against DARTS at 64 (the PC-DARTS paper's claim)",
                      [(setting, COLUMNS, table)], notes)
    else:
        write_results("darts_step", "One search step of DARTS, PC-DARTS and GDAS against a plain DARTS reference",
                      [(setting, COLUMNS, table)], notes)


if __name__ == "__main__":
    main()
