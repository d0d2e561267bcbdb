"""Training throughput of nasrun's estimator against a minimal plain PyTorch loop, same data, same run.

One fixed macro architecture is trained on the bundled digits for the same epochs, batch size and
optimiser, alternating the two loops `--repeats` times; the median throughputs (training samples per
second, final validation pass included in both) and their ratio are printed. Goal: ratio >= 0.97.

    python scripts/bench_overhead.py [--epochs 10] [--repeats 3]

The figures go to results/overhead_training.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from nasrun.hardware import seed_everything
from results_file import write_results

SPACE = ["search_space.min_layers=8", "search_space.max_layers=12", "search_space.widths=[16,32,64]",
         "search_space.stem_width=16"]  # a macro space that holds ARCH
ARCH = {"stem": 16, "layers": [
    {"op": "conv3x3", "width": 32, "stride": 1, "skips": []},
    {"op": "sepconv3x3", "width": 32, "stride": 1, "skips": []},
    {"op": "conv3x3", "width": 64, "stride": 2, "skips": [1]},
    {"op": "maxpool3x3", "width": 64, "stride": 1, "skips": [2]},
    {"op": "conv5x5", "width": 64, "stride": 1, "skips": [3]},
    {"op": "conv3x3", "width": 64, "stride": 2, "skips": []},
    {"op": "identity", "width": 64, "stride": 1, "skips": [5]},
    {"op": "conv3x3", "width": 64, "stride": 1, "skips": []},
]}


def plain_loop(space, data, epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """The loop a user would write by hand: SGD + cosine per step, clipping, then a validation pass."""
    seed_everything(seed)
    model = space.build(ARCH, data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4, nesterov=True)
    steps = epochs * -(-len(data.train) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    images, labels = data.train.images, data.train.labels
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, len(labels), batch_size):
            index = order[start:start + batch_size]
            loss = loss_fn(model(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            loss.item()
    model.eval()
    with torch.no_grad():
        return (model(data.val.images).argmax(1) == data.val.labels).float().mean().item()


def timed(fn) -> tuple[float, float]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = compose_run_config(["dataset=digits", "estimator=full_training", "hardware=cpu", *SPACE,
                              f"estimator.epochs={args.epochs}", f"estimator.batch_size={args.batch_size}",
                              "estimator.lr=0.05"])
    parts = build_components(cfg, ["hardware", "search_space", "estimator", "dataset"])
    data, space, hardware, estimator = parts.dataset.load(), parts.search_space, parts.hardware, parts.estimator
    hardware.apply()
    estimator.bind(space, data, hardware)
    samples = args.epochs * len(data.train)
    estimator.evaluate(ARCH, seed=0)  # warm-up of both paths (allocator, kernels), untimed
    plain_loop(space, data, 1, args.batch_size, 0.05, 0)
    ours, plain = [], []
    for repeat in range(args.repeats):  # alternate which loop goes first, so drift hits both alike
        runs = [("nasrun", lambda: estimator.evaluate(ARCH, seed=repeat)),
                ("plain", lambda: plain_loop(space, data, args.epochs, args.batch_size, 0.05, repeat))]
        results = {}
        for name, run in (runs if repeat % 2 == 0 else runs[::-1]):
            results[name] = timed(run)
        (seconds, evaluation), (plain_seconds, accuracy) = results["nasrun"], results["plain"]
        ours.append(samples / seconds)
        plain.append(samples / plain_seconds)
        print(f"repeat {repeat}: nasrun {ours[-1]:.0f} samples/s (val {evaluation.metrics['val_accuracy']:.3f}), "
              f"plain {plain[-1]:.0f} samples/s (val {accuracy:.3f})")
    ratio = statistics.median(ours) / statistics.median(plain)
    summary = (f"median throughput: nasrun {statistics.median(ours):.0f} samples/s, plain loop "
               f"{statistics.median(plain):.0f} samples/s, ratio {ratio:.3f} (goal >= 0.97) on "
               f"{torch.get_num_threads()} threads")
    print(summary)
    rows = [[repeat, f"{a:.0f}", f"{b:.0f}", f"{a / b:.3f}"] for repeat, (a, b) in enumerate(zip(ours, plain))]
    rows.append(["median", f"{statistics.median(ours):.0f}", f"{statistics.median(plain):.0f}", f"{ratio:.3f}"])
    write_results("overhead_training", "Training throughput: nasrun's estimator against a plain PyTorch loop",
                  [(f"digits, one fixed macro architecture, {args.epochs} epochs, batch {args.batch_size}",
                    ["repeat", "nasrun samples/s", "plain loop samples/s", "ratio"], rows)],
                  notes=f"{summary}.")


if __name__ == "__main__":
    main()
