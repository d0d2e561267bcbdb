"""The GPU check: a few search steps of DARTS (1st and 2nd order), PC-DARTS and GDAS at their published
settings, with and without AMP, and a training epoch's worth of steps of the DARTS_V2 evaluation network;
prints s/step, peak GPU memory and the projected hours of the full published schedule next to the
papers' GPU-days.

    python scripts/gpu_check.py                 # on a CUDA machine (hardware=cuda)
    python scripts/gpu_check.py --cpu-smoke     # the same code path on the CPU at toy sizes (the test suite runs it)

A GPU run writes its table to results/gpu_check.md (a --cpu-smoke run writes nothing).

Settings come from the package's own configs (conf/strategy/<name>.yaml: batch size, epochs, C, cells,
train_portion), so the check measures what `nasrun strategy=<name> dataset=cifar10 hardware=cuda` runs.
One search step = one α step + one weight step, as `strategy.search()` runs them; the projected hours
are s/step × steps per epoch (CIFAR-10's 50,000 training images × train_portion / batch) × epochs
(PC-DARTS's α-free warm-up epochs are counted as full steps, so its projection is an upper bound).

Published search costs (GPU-days on CIFAR-10, the papers' own GPUs; quoted, never divided by):
DARTS 1st order 1.5 and 2nd order 4 (Liu et al., ICLR 2019, Table 1); PC-DARTS 0.1 (Xu et al., ICLR
2020, Table 1); GDAS 0.21 (Dong & Yang, CVPR 2019, Table 1). DARTS_V2's evaluation: 600 epochs, batch 96,
C=36, 20 cells, auxiliary head (Liu et al., 2019, section 3.3).
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from nasrun.hardware import Hardware
from nasrun.spaces.darts_genotypes import published_genotype
from nasrun.supernets.bilevel import Optimisers, to_device
from results_file import write_results

CIFAR10_TRAIN = 50_000
SEARCHES = {  # variant: (strategy option, overrides, published GPU-days)
    "darts1": ("darts", ["strategy.order=1"], 1.5),
    "darts2": ("darts", ["strategy.order=2"], 4.0),
    "pcdarts": ("pcdarts", [], 0.1),
    "gdas": ("gdas", [], 0.21),
}
EVALUATION = dict(C=36, layers=20, batch=96, epochs=600)
SMOKE = dict(C=8, layers=3, batch=4, image=8, eval_C=4, eval_layers=3)  # C=8: PC-DARTS's k=4 needs C % 2k == 0


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float:
    """Peak GPU memory allocated since `reset_peak` (CUDA), else the process's peak RSS."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def timed_steps(step, steps: int, device: str) -> float:
    """Median seconds of `steps` calls of `step()` after one untimed warm-up call."""
    step()
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def search_row(variant: str, hardware: Hardware, steps: int, smoke: bool) -> dict:
    option, overrides, published = SEARCHES[variant]
    if smoke:
        overrides = [*overrides, f"strategy.C={SMOKE['C']}", f"strategy.layers={SMOKE['layers']}",
                     f"strategy.batch_size={SMOKE['batch']}"]
    cfg = compose_run_config([f"strategy={option}", *overrides])
    parts = build_components(cfg, ["search_space", "strategy"])
    space, strategy = parts.search_space, parts.strategy
    strategy.bind(space, 0, 1)
    settings, trainer = strategy.settings, strategy.trainer(hardware.autocast)
    torch.manual_seed(0)
    size = SMOKE["image"] if smoke else 32
    model = strategy.build_supernet(space, (3, size, size), 10).to(hardware.device, memory_format=torch.channels_last)
    optimisers = Optimisers.for_model(model, settings)
    w_optimizer, arch_optimizer = optimisers.weights, optimisers.arch
    batch = settings.batch_size
    x, x_arch = (to_device(torch.randn(batch, 3, size, size), hardware.device) for _ in range(2))
    y, y_arch = (torch.randint(0, 10, (batch,), device=hardware.device) for _ in range(2))
    model.train()
    reset_peak(hardware.device)

    def step() -> None:
        trainer.arch_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, settings.lr)
        trainer.weight_step(model, w_optimizer, x, y)

    seconds = timed_steps(step, steps, hardware.device)
    steps_per_epoch = math.ceil(CIFAR10_TRAIN * settings.train_portion / batch)
    return {"what": f"{variant} search (batch {batch})", "seconds": seconds, "peak_gb": peak_gb(hardware.device),
            "hours": seconds * steps_per_epoch * settings.epochs / 3600, "published_gpu_days": published}


def evaluation_row(hardware: Hardware, steps: int, smoke: bool) -> dict:
    C, layers = (SMOKE["eval_C"], SMOKE["eval_layers"]) if smoke else (EVALUATION["C"], EVALUATION["layers"])
    batch = SMOKE["batch"] if smoke else EVALUATION["batch"]
    size = SMOKE["image"] if smoke else 32
    cfg = compose_run_config(["search_space=darts", f"search_space.C={C}", f"search_space.layers={layers}",
                              "search_space.auxiliary=true", "search_space.drop_path_prob=0.2"])
    space = build_components(cfg, ["search_space"]).search_space
    torch.manual_seed(0)
    model = space.build(published_genotype("DARTS_V2"), (3, size, size), 10).to(hardware.device,
                                                                              memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    x = to_device(torch.randn(batch, 3, size, size), hardware.device)
    y = torch.randint(0, 10, (batch,), device=hardware.device)
    model.train()
    reset_peak(hardware.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with hardware.autocast():
            out = model(x)
        logits, auxiliary = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits.float(), y)
        if auxiliary is not None:
            loss = loss + 0.4 * F.cross_entropy(auxiliary.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    seconds = timed_steps(step, steps, hardware.device)
    steps_per_epoch = math.ceil(CIFAR10_TRAIN / batch)
    return {"what": f"DARTS_V2 training (batch {batch})", "seconds": seconds, "peak_gb": peak_gb(hardware.device),
            "hours": seconds * steps_per_epoch * EVALUATION["epochs"] / 3600, "published_gpu_days": None,
            "epoch_seconds": seconds * steps_per_epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU (checks the code path)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (after one warm-up)")
    parser.add_argument("--variants", nargs="+", default=list(SEARCHES), choices=list(SEARCHES))
    args = parser.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: run with --cpu-smoke to check the code path on the CPU")
    device = "cpu" if args.cpu_smoke else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (smoke sizes: figures mean nothing)"
    print(f"{name}, torch {torch.__version__}; median of {args.steps} steps after one warm-up")
    print(f"{'what':34} {'amp':>5} {'s/step':>8} {'peak GB':>8} {'projected h':>12} {'published':>16}")
    table = []
    for amp in (False,) if args.cpu_smoke else (False, True):  # autocast is CUDA-only (Hardware.autocast)
        hardware = build_components(compose_run_config([f"hardware={device}", f"hardware.amp={str(amp).lower()}"]),
                                    ["hardware"]).hardware
        rows = [search_row(v, hardware, args.steps, args.cpu_smoke) for v in args.variants]
        rows.append(evaluation_row(hardware, args.steps, args.cpu_smoke))
        for row in rows:
            published = f"{row['published_gpu_days']} GPU-days" if row["published_gpu_days"] else "-"
            print(f"{row['what']:34} {str(amp):>5} {row['seconds']:8.3f} {row['peak_gb']:8.2f} {row['hours']:12.1f}"
                  f" {published:>16}", flush=True)
            table.append([row["what"], amp, f"{row['seconds']:.3f}", f"{row['peak_gb']:.2f}", f"{row['hours']:.1f}",
                          published])
    if not args.cpu_smoke:
        write_results("gpu_check", "DARTS, PC-DARTS and GDAS on a GPU at their published settings", [(
            f"{name}; median of {args.steps} steps after one warm-up",
            ["what", "amp", "s/step", "peak GB", "projected hours", "published"], table)],
            notes="Projected hours: s/step × steps per epoch (CIFAR-10) × the config's epochs; published: the "
                  "papers' search cost on their own GPUs (quoted, never divided by).")


if __name__ == "__main__":
    main()
