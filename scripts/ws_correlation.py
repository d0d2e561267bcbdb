"""How well do one-shot (inherited-weight) scores rank architectures?

Trains one supernet on digits, scores a seeded sample of architectures with inherited weights, and
compares that ranking (Kendall's tau, Spearman's rho) with
  * stand-alone accuracy: each sampled architecture trained from scratch on the same data (macro, nb201);
  * for nb201 also the benchmark table's accuracy (`--table`, column `--column`, CIFAR numbers).
The NB201 supernet here is trained on digits (8x8, 10 classes), not CIFAR (not available offline), so
its agreement with the CIFAR table measures transfer across datasets as much as weight sharing.

  python scripts/ws_correlation.py --space macro --archs 20
  python scripts/ws_correlation.py --space nb201 --archs 100 --standalone 15
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from scipy import stats

from nasrun.commands.correlate import sample_distinct
from nasrun.datasets.digits import Digits
from nasrun.estimators.nb201 import load_table
from nasrun.estimators.full_training import FullTraining
from nasrun.estimators.weight_sharing import WeightSharing
from nasrun.hardware import Hardware
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space



def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=["macro", "nb201"], default="macro")
    parser.add_argument("--archs", type=int, default=20, help="architectures scored with inherited weights")
    parser.add_argument("--standalone", type=int, default=None,
                        help="how many of them to also train stand-alone (default: all)")
    parser.add_argument("--supernet-epochs", type=int, default=30)
    parser.add_argument("--standalone-epochs", type=int, default=10)
    parser.add_argument("--sampling", default="uniform", choices=["uniform", "sandwich", "progressive_shrinking"])
    parser.add_argument("--kd", action="store_true", help="distil from the largest subnet")
    parser.add_argument("--table", default=None, help="an NB201 accuracy CSV (nb201 only; default: the packaged table)")
    parser.add_argument("--column", default="cifar10_valid_12ep", help="table column to compare with")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser.parse_args()


def make_space(name: str):
    if name == "macro":
        return MacroSpace(min_layers=3, max_layers=6, widths=(16, 32), ops=("conv3x3", "conv5x5", "sepconv3x3",
                                                                          "maxpool3x3", "identity"))
    return NB201Space(C=8, N=1)


def correlation(a: list[float], b: list[float]) -> dict:
    tau, tau_p = stats.kendalltau(a, b)
    rho, rho_p = stats.spearmanr(a, b)
    return {"n": len(a), "kendall_tau": round(float(tau), 4), "kendall_p": float(tau_p),
            "spearman": round(float(rho), 4), "spearman_p": float(rho_p)}


def table_accuracies(path: str | None, column: str) -> dict[str, float]:
    """arch -> the column's accuracy, from `path` or from the table nasrun ships."""
    if path is None:
        table = load_table()
        return dict(zip(table.archs, table.columns[column]))
    with open(path, newline="") as handle:
        return {row["arch"]: float(row[column]) for row in csv.DictReader(handle)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    hardware, data, space = Hardware("cpu"), Digits().load(), make_space(args.space)
    archs = sample_distinct(space, args.archs, args.seed)

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    estimator = WeightSharing(epochs=args.supernet_epochs, sampling=args.sampling,
                              kd={"teacher": "largest" if args.kd else None}, retrain={"enabled": False})
    estimator.bind(space, data, hardware)
    supernet_seconds = time.perf_counter() - start
    start = time.perf_counter()
    oneshot = [estimator.evaluate(arch, args.seed).metrics["val_accuracy"] for arch in archs]
    oneshot_seconds = time.perf_counter() - start

    count = len(archs) if args.standalone is None else min(args.standalone, len(archs))
    trainer = FullTraining(epochs=args.standalone_epochs)
    trainer.bind(space, data, hardware)
    start = time.perf_counter()
    standalone = [trainer.evaluate(arch, args.seed + i).metrics["val_accuracy"] for i, arch in enumerate(archs[:count])]
    standalone_seconds = time.perf_counter() - start

    results = {"space": args.space, "dataset": "digits", "sampling": args.sampling, "kd": args.kd,
               "supernet_epochs": args.supernet_epochs, "standalone_epochs": args.standalone_epochs,
               "seconds": {"supernet_training": round(supernet_seconds, 1), "oneshot_scoring": round(oneshot_seconds, 1),
                           "standalone_training": round(standalone_seconds, 1)},
               "oneshot_vs_standalone": correlation(oneshot[:count], standalone)}
    if args.space == "nb201":
        table = table_accuracies(args.table, args.column)
        reference = [table[arch] for arch in archs]
        results[f"oneshot_vs_table_{args.column}"] = correlation(oneshot, reference)
        results[f"standalone_vs_table_{args.column}"] = correlation(standalone, reference[:count])
    results["archs"] = [{"arch": space.describe(a), "oneshot": o, "standalone": s}
                        for a, o, s in zip(archs, oneshot, standalone + [None] * (len(archs) - count))]
    print(json.dumps({k: v for k, v in results.items() if k != "archs"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
