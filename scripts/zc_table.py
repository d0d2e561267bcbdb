"""Zero-cost proxies against published numbers, on NAS-Bench-201 (CIFAR-10) with real CIFAR-10 images.

1. Ranking: `nasrun-correlate` scores a seeded sample of distinct NB201 architectures with every proxy
   (estimator=zero_cost on the CIFAR-10 sample, written in torchvision's `cifar-10-batches-py` layout and
   read by `dataset=cifar10`) and with the table's 200-epoch test accuracy (estimator=nb201,
   score_column=test_200ep); Spearman ρ and Kendall τ per proxy, ρ with the 200-epoch validation accuracy
   (the table's cifar10_valid_200ep, looked up for the same architectures) next to the published
   all-architecture ρ (Abdelfattah et al., 2021, zero-cost-nas notebook), the rank vote of synflow,
   jacob_cov and snip, and a bootstrap 95 % interval of each ρ over the sampled architectures.
2. NASWOT-style search (Mellor et al., 2021): the best naswot score of N random architectures, its
   200-epoch test accuracy; N-architecture draws from the scored sample (every score is a function of
   the architecture, the init seed being fixed), mean ± std over draws; published 92.81 ± 0.99 (N=100).
3. Regularized evolution on the table at `--queries` queries, with and without a synflow warm start
   (strategy.warmup), over the same seeds, through nasrun's Runner in memory (scripts/nb201_table.py).

    python scripts/zc_table.py                          # 1,000 architectures: ~100 min scoring + ~13 min REA, 2 cores
    python scripts/zc_table.py --archs 200 --rea-seeds 10
    python scripts/zc_table.py --reuse outputs/zc_table # print again from a finished run's files

A run (not --reuse) writes results/zero_cost.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cifar10_sample  # noqa: E402  (the CIFAR-10 sample in torchvision's layout)
import nb201_table  # noqa: E402  (REA searches on the table, in memory)
from results_file import write_results  # noqa: E402
from nasrun.machine import prepare_openmp  # noqa: E402

prepare_openmp()  # idle OpenMP threads sleep, as in `nasrun` (set before torch loads; nasrun/machine.py)

PROXIES = ["synflow", "jacob_cov", "naswot", "snip", "grad_norm", "grasp", "fisher", "params", "flops"]
PUBLISHED_RHO = {  # Spearman ρ with 200-epoch CIFAR-10 test accuracy, all 15,625 NB201 architectures
    "synflow": 0.737, "jacob_cov": 0.731, "snip": 0.596, "grad_norm": 0.594, "grasp": 0.514, "fisher": 0.36}
PUBLISHED_SOURCE = "Abdelfattah et al., 2021 (zero-cost-nas notebook)"
PUBLISHED_TARGET = "cifar10_valid_200ep"  # the paper reports ρ with the "final validation accuracy"
BOOTSTRAP = 1000
NASWOT_PUBLISHED = (92.81, 0.99, "Mellor et al., 2021, NB201 CIFAR-10, N=100")
REA_PUBLISHED = (93.92, 0.30, "NB201 paper, Table 5, ~100 queries")
VOTE = ("synflow", "jacob_cov", "snip")


def rank_correlations(args, data_root: Path, out: Path) -> dict:
    """nasrun-correlate: every proxy (A) against the table's 200-epoch test accuracy (B)."""
    from nasrun.commands.correlate import correlate

    shared = ["search_space=nb201", "dataset=cifar10", f"dataset.root={data_root}", "dataset.verify=false",
              "hardware=cpu"]
    side_a = ["estimator=zero_cost", f"estimator.proxy=[{','.join(PROXIES)}]", f"estimator.batch_size={args.batch_size}",
              f"estimator.batches={args.batches}", "estimator.reference=2"]  # the vote of all nine is not used here
    side_b = ["estimator=nb201", "estimator.score_column=test_200ep"]
    return correlate(shared, side_a, side_b, args.archs, args.seed, ([f"zc_{p}" for p in PROXIES], "val_accuracy"), out)


def table_column(result: dict, column: str) -> list[float | None]:
    """`column` of the NB201 table for each sampled architecture, as a fraction (None where B failed)."""
    from nasrun.estimators.nb201 import load_table

    table = load_table()
    return [table.columns[column][table.row(r["arch"])] / 100 if r["b"] is not None else None
            for r in result["architectures"]]


def proxy_rows(result: dict) -> list[dict]:
    """Per proxy: scored, ρ/τ with the test column, ρ with PUBLISHED_TARGET, bootstrap 95 % of the former."""
    from nasrun.reports.correlation import spearman

    target = table_column(result, PUBLISHED_TARGET)
    rng = random.Random(0)
    rows = []
    for proxy in PROXIES:
        metric = result["by_metric"][f"zc_{proxy}"]
        pairs = [(r["a_metrics"][f"zc_{proxy}"], r["b"], v) for r, v in zip(result["architectures"], target)
                 if r["b"] is not None and r["a_metrics"][f"zc_{proxy}"] is not None]
        scores, tests, valids = (list(column) for column in zip(*pairs))
        draws = sorted(spearman([scores[i] for i in pick], [tests[i] for i in pick])
                       for pick in ([rng.randrange(len(pairs)) for _ in pairs] for _ in range(BOOTSTRAP)))
        rows.append({"proxy": proxy, "scored": len(pairs), "rho_test": metric["spearman_rho"],
                     "tau_test": metric["kendall_tau"], "rho_test_95": (draws[int(0.025 * BOOTSTRAP)],
                                                                       draws[int(0.975 * BOOTSTRAP) - 1]),
                     "rho_valid": spearman(scores, valids), "published": PUBLISHED_RHO.get(proxy)})
    return rows


def vote_rho(result: dict) -> tuple[float, int]:
    """Spearman ρ of the mean rank of the VOTE proxies (within the sample) with the test accuracy."""
    from nasrun.reports.correlation import average_ranks, spearman

    rows = [r for r in result["architectures"] if r["b"] is not None and
            all(r["a_metrics"][f"zc_{p}"] is not None for p in VOTE)]
    ranks = [average_ranks([r["a_metrics"][f"zc_{p}"] for r in rows]) for p in VOTE]
    return spearman([sum(column) for column in zip(*ranks)], [r["b"] for r in rows]), len(rows)


def naswot_search(result: dict, n: int, draws: int, seed: int) -> list[float]:
    """Test accuracy (%) of the best-naswot architecture of `n` drawn from the sample, per draw."""
    rows = [r for r in result["architectures"] if r["b"] is not None and r["a_metrics"]["zc_naswot"] is not None]
    rng = random.Random(seed)
    return [max(rng.sample(rows, n), key=lambda r: r["a_metrics"]["zc_naswot"])["b"] * 100 for _ in range(draws)]


def rea_runs(args) -> dict[str, list[float]]:
    """Test accuracies (%) of REA without and with a synflow warm start, over the same seeds."""
    from concurrent.futures import ProcessPoolExecutor

    seeds = list(range(args.seed, args.seed + args.rea_seeds))
    warm = ["regularized_evolution.warmup.proxy=synflow",
            f"regularized_evolution.warmup.candidates={args.warm_candidates}"]
    jobs = {"REA": ("regularized_evolution", "cifar10", seeds, args.queries, []),
            "REA + synflow warm start": ("regularized_evolution", "cifar10", seeds, args.queries, warm)}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {label: pool.submit(nb201_table.run_cell, job) for label, job in jobs.items()}
        return {label: future.result() for label, future in futures.items()}


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}"


def tables(result: dict, rows: list[dict], vote: tuple[float, int], naswot: list[float], rea: dict, args) -> list:
    """The ranking table and the searches table as (caption, columns, rows)."""
    ranking = []
    for row in rows:
        published = row["published"]
        ranking.append([row["proxy"], row["scored"], f"{row['rho_test']:.3f}",
                        f"{row['rho_test_95'][0]:.3f}–{row['rho_test_95'][1]:.3f}", f"{row['tau_test']:.3f}",
                        f"{row['rho_valid']:.3f}", f"{published:.3f}" if published is not None else "-",
                        f"{row['rho_valid'] - published:+.3f}" if published is not None else "-"])
    ranking.append([f"vote({', '.join(VOTE)})", vote[1], f"{vote[0]:.3f}", "-", "-", "-", "-", "-"])
    searches = [[f"NASWOT: best naswot of {args.naswot_n} random", mean_std(naswot), len(naswot),
                 f"{NASWOT_PUBLISHED[0]:.2f} ± {NASWOT_PUBLISHED[1]:.2f} ({NASWOT_PUBLISHED[2]})"]]
    for label, values in rea.items():
        published = f"{REA_PUBLISHED[0]:.2f} ± {REA_PUBLISHED[1]:.2f} ({REA_PUBLISHED[2]})" if label == "REA" else "-"
        searches.append([f"{label}, {args.queries} queries", mean_std(values), len(values), published])
    return [(f"NB201 CIFAR-10: proxies vs 200-epoch accuracy, {result['sampled']} sampled architectures (seed "
             f"{args.seed}), batch {args.batch_size}×{args.batches} of real CIFAR-10 images",
             ["proxy", "scored", "ρ test", "95 % (bootstrap)", "τ test", "ρ valid",
              f"published ρ ({PUBLISHED_SOURCE})", "valid − published"], ranking),
            ("Searches: 200-epoch CIFAR-10 test accuracy (%) of the architecture found",
             ["search", "ours (mean ± std)", "runs", "published"], searches)]


def print_tables(parts: list, seconds: dict) -> None:
    console = Console(width=170)
    for caption, columns, rows in parts:
        table = Table(title=caption)
        for column in columns:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        console.print(table)
    console.print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000, help="distinct NB201 architectures scored by every proxy")
    parser.add_argument("--seed", type=int, default=0, help="sample, init and REA seeds start here")
    parser.add_argument("--batch-size", type=int, default=64, help="training images a data proxy sees per batch")
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--naswot-n", type=int, default=100, help="architectures per NASWOT search")
    parser.add_argument("--naswot-draws", type=int, default=500, help="NASWOT searches drawn from the sample")
    parser.add_argument("--rea-seeds", type=int, default=50)
    parser.add_argument("--queries", type=int, default=100, help="table queries per REA search")
    parser.add_argument("--warm-candidates", type=int, default=100, help="architectures the warm start scores")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the REA searches")
    parser.add_argument("--out", type=Path, default=Path("outputs") / "zc_table")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="print the tables from an earlier run's correlation.json and zc_table.json in DIR "
                             "(the scoring and the REA searches are not run again; its arguments replace these)")
    args = parser.parse_args(argv)
    if args.reuse is not None:
        return reprint(args.reuse)
    if not cifar10_sample.sample_path().is_file():
        print(f"zc_table: the CIFAR-10 sample is not at {cifar10_sample.sample_path()} (set NASRUN_CIFAR10_SAMPLE)",
              file=sys.stderr)
        return 2
    if args.naswot_n > args.archs:
        parser.error("--naswot-n cannot exceed --archs")
    seconds = {}
    with tempfile.TemporaryDirectory() as root:
        cifar10_sample.write_cifar10_batches(Path(root))
        start = time.perf_counter()
        result = rank_correlations(args, Path(root), args.out)
        seconds["scoring"] = time.perf_counter() - start
    naswot = naswot_search(result, args.naswot_n, args.naswot_draws, args.seed)
    start = time.perf_counter()
    rea = rea_runs(args)
    seconds["REA searches"] = time.perf_counter() - start
    summary = {"naswot": naswot, "rea": rea, "args": {k: str(v) for k, v in vars(args).items()}, "seconds": seconds}
    parts = report(result, summary, args)
    (args.out / "zc_table.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out / 'correlation.json'}, {args.out / 'correlation.png'} and {args.out / 'zc_table.json'}")
    write_results("zero_cost", "Zero-cost proxies on NAS-Bench-201 CIFAR-10", parts, notes=(
        "ρ test / τ test: with the table's 200-epoch test accuracy (bootstrap 95 % interval over the sampled "
        "architectures); ρ valid: with the 200-epoch validation accuracy (cifar10_valid_200ep), the column the "
        "published figures correlate with. Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + "."))
    return 0


def report(result: dict, summary: dict, args) -> list:
    """Print both tables, add the ranking rows and the vote to `summary`, return the tables."""
    rows, vote = proxy_rows(result), vote_rho(result)
    summary.update(proxies=rows, vote={"proxies": VOTE, "spearman_rho": vote[0], "archs": vote[1]})
    parts = tables(result, rows, vote, summary["naswot"], summary["rea"], args)
    print_tables(parts, summary["seconds"])
    return parts


def reprint(directory: Path) -> int:
    """--reuse: the tables of a finished run, from its files."""
    try:
        result = json.loads((directory / "correlation.json").read_text())
        summary = json.loads((directory / "zc_table.json").read_text())
    except (OSError, ValueError) as error:
        print(f"zc_table: --reuse {directory}: {error}", file=sys.stderr)
        return 2
    saved = summary["args"]
    args = argparse.Namespace(seed=saved["seed"], batch_size=saved["batch_size"], batches=saved["batches"],
                              naswot_n=saved["naswot_n"], queries=saved["queries"])
    report(result, summary, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
