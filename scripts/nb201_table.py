"""NAS-Bench-201 at small budgets: every strategy at each query budget, next to the published numbers.

For each strategy, dataset and seed: one search on the tabular estimator, seeing only the 12-epoch
validation accuracy; at each budget b of `--queries` the best of its first b queries is tested (200-epoch
test accuracy), mean ± std over seeds. A search runs once, to the largest budget: no strategy reads its
budget (the first b queries of a long search are those of a b-query search; tests/test_proxy_guided.py
checks the CLI at budget.trials=20 against this script). Zero-cost lookups (proxy_guided's pool, a warm
start's candidates) are counted apart from queries.

Space, strategy and estimator are built from the packaged configs (`nasrun strategy=<name>
search_space=nb201 estimator=nb201 estimator.dataset=<dataset>`, through build_components); each search
is nasrun's Runner without a run directory. Tuning used seeds 0-199; the report uses seeds from 10,000.

    python scripts/nb201_table.py --jobs 2                       # 10,20,50,100 queries, 100 seeds (30 slow)
    python scripts/nb201_table.py --queries 100 --seeds 500 --first-seed 1000 --strategies random tpe
    python scripts/nb201_table.py --partial-table --first-seed 0 --seeds 200   # tuning, zero-cost table incomplete
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from results_file import write_results
from nasrun.machine import prepare_openmp  # noqa: E402

prepare_openmp()  # idle OpenMP threads sleep, as in `nasrun` (set before torch loads; nasrun/machine.py)

STRATEGIES = ["random", "regularized_evolution", "rea_synflow", "reinforce", "tpe", "local_search",
              "local_search_first", "evolution", "bananas", "proxy_guided"]
VARIANTS = {"rea_synflow": ("regularized_evolution", ["strategy.warmup.proxy=synflow"])}  # REA, synflow warm start
SLOW_DEFAULT_SEEDS = {"tpe": 30, "reinforce": 30, "bananas": 30}   # optuna / torch per query: 10-100x slower
DATASETS = ["cifar10", "cifar100", "imagenet16"]
PAPER = {  # NB201 paper, Table 5 (mean ± std over 500 runs, 200-epoch test accuracy), ~100 queries
    "regularized_evolution": {"cifar10": (93.92, 0.30), "cifar100": (71.84, 0.99), "imagenet16": (45.54, 1.03)},
    "reinforce": {"cifar10": (93.85, 0.37), "cifar100": (71.71, 1.09), "imagenet16": (45.24, 1.18)},
    "random": {"cifar10": (93.70, 0.36), "cifar100": (71.04, 1.07), "imagenet16": (44.57, 1.25)},
    "bohb": {"cifar10": (93.61, 0.52), "cifar100": (70.85, 1.28), "imagenet16": (44.42, 1.49)},
}
PUBLISHED = [  # (method, the budget column it belongs in or None, {dataset: "mean ± std"}, its budget)
    ("REA (NB201 paper)", 100, {d: "%.2f ± %.2f" % v for d, v in PAPER["regularized_evolution"].items()},
     "~100 queries (12,000 s)"),
    ("random search (NB201 paper)", 100, {d: "%.2f ± %.2f" % v for d, v in PAPER["random"].items()},
     "~100 queries (12,000 s)"),
    ("NASWOT (Mellor et al., 2021)", None, {"cifar10": "92.96 ± 0.81"}, "no training, N=100 scored"),
    ("RoBoT (He et al., ICLR 2024)", 20, {"cifar10": "94.36 ± 0.00", "cifar100": "73.51", "imagenet16": "46.34"},
     "20 queries"),
    ("MF-NAS (GECCO 2024)", None, {"cifar10": "94.36 ± 0.00"}, "20,000 s simulated"),
]
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def nb201_config(name: str, dataset: str, overrides: list[str], partial: str | None = None):
    """The config `nasrun strategy=<name> search_space=nb201 estimator=nb201` composes, with the
    `name.key=value` overrides meant for this strategy applied as `strategy.key=value`."""
    from nasrun.commands.common import compose_run_config

    base, extra = VARIANTS.get(name, (name, []))
    mine = [f"strategy.{o.partition('.')[2]}" for o in overrides if o.partition(".")[0] == name]
    return compose_run_config([f"strategy={base}", "search_space=nb201", "estimator=nb201",
                               f"estimator.dataset={dataset}", "hardware=cpu", *extra, *mine,
                               *([f"search_space.partial_table={partial}"] if partial else [])])


def search(strategy, estimator, space, hardware, seed: int, queries: int, budgets=None):
    """One search by nasrun's Runner in memory (no run directory). Returns (200-epoch test accuracy of the
    best-found architecture, best-so-far validation curve), or with `budgets` ({budget: test accuracy of
    the best of the first `budget` queries}, zero-cost lookups and computations the search used)."""
    from nasrun.estimators import Evaluation
    from nasrun.executors.local import LocalExecutor
    from nasrun.records import best_trial
    from nasrun.run.runner import Budget, Experiment, Runner

    experiment = Experiment(space, strategy, estimator, LocalExecutor(), hardware, Budget(queries), seed=seed,
                            final_test=False)
    runner = Runner(experiment, None, show_progress=False)
    summary = runner.run()
    trials = sorted(runner.trials, key=lambda t: t.id)

    def tested(first: int) -> float:
        best = best_trial(trials[:first])
        return estimator.test(space.from_json(best.arch), Evaluation(dict(best.metrics)), 0)["test_accuracy"] * 100

    if budgets is not None:
        zero_cost = [summary.get("zero_cost", {}), summary.get("warmup", {})]
        return {b: tested(b) for b in budgets}, sum(part.get(k, 0) for part in zero_cost for k in ("looked_up", "computed"))
    curve, best = [], None
    for trial in trials:
        best = trial if best is None or trial.score() > best.score() else best
        curve.append(best.score())
    return tested(len(trials)), curve


def components(name: str, dataset: str, overrides: list[str], partial: str | None = None):
    import torch

    from nasrun.build import build_components

    torch.set_num_threads(1)
    cfg = nb201_config(name, dataset, overrides, partial)
    return cfg, build_components(cfg, ["hardware", "search_space", "estimator"])


def run_cell(job: tuple) -> list[float]:
    """Test accuracies of `seeds` searches of `queries` queries, one strategy on one dataset (a worker)."""
    name, dataset, seeds, queries, overrides = job
    from nasrun.build import build_components

    cfg, parts = components(name, dataset, overrides)
    return [search(build_components(cfg, ["strategy"]).strategy, parts.estimator, parts.search_space, parts.hardware,
                   seed, queries)[0] for seed in seeds]


def run_budgets(job: tuple) -> list[tuple[dict, int]]:
    """Per seed: ({budget: test accuracy}, zero-cost lookups) of one strategy on one dataset (a worker)."""
    name, dataset, seeds, budgets, overrides, partial = job
    from nasrun.build import build_components

    cfg, parts = components(name, dataset, overrides, partial)
    return [search(build_components(cfg, ["strategy"]).strategy, parts.estimator, parts.search_space, parts.hardware,
                   seed, max(budgets), budgets) for seed in seeds]


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}" if values else "-"


def dataset_table(dataset: str, results: dict, budgets: list[int], seeds_used: dict, resnet: str,
                  optimum: str) -> tuple[str, list[str], list[list[str]]]:
    """One table (caption, columns, rows): a row per strategy (test accuracy at each budget, zero-cost lookups
    per search), then the published rows in the budget column they were measured at."""
    columns = ["method (seeds)", *(f"{b} queries" for b in budgets), "zero-cost lookups / search"]
    rows = []
    for name, by_dataset in results.items():
        runs = by_dataset.get(dataset)
        if runs is None:
            continue
        lookups = sorted({r[1] for r in runs})
        rows.append([f"{name} ({seeds_used[name]})", *(mean_std([r[0][b] for r in runs]) for b in budgets),
                     "/".join(map(str, lookups))])
    for method, column, numbers, budget in PUBLISHED:
        if dataset in numbers:
            note = "" if column in budgets else f": {numbers[dataset]}"
            rows.append([f"*published:* {method}, {budget}{note}",
                         *(numbers[dataset] if b == column else "" for b in budgets), ""])
    for label, value in (("ResNet cell", resnet), ("optimum", optimum)):
        rows.append([f"{label} (200-epoch test)", *([value] * len(budgets)), ""])
    return f"### {dataset}", columns, rows


def write_table(args, results: dict, seeds_used: dict, budgets: list[int], seconds: float) -> Path:
    """results/nb201_small_budgets.md (or --md): the settings, then one table per dataset."""
    from nasrun.estimators.nb201 import NB201_DATASETS, load_table
    from nasrun.estimators.nb201_zc import load_zc_table

    table, zc = load_table(), load_zc_table()
    partial = ""
    if args.partial_table:
        names = None if args.partial_table == "true" else args.partial_table.strip("[]").split(",")
        partial = (f" — **PARTIAL TABLE: every strategy searched only the {len(zc.done(names)):,} architectures "
                   f"scored by {', '.join(names) if names else 'every proxy'}; not the final numbers**")
    preamble = "\n".join([
        f"- {seconds / 60:.1f} min in all",
        f"- zero-cost table: {zc.describe()}{partial}",
        f"- seeds {args.first_seed}..{args.first_seed + args.seeds - 1} (fewer for slow strategies: "
        f"{ {k: v for k, v in seeds_used.items() if v != args.seeds} }); tuning used seeds 0-199",
        "- 200-epoch test accuracy (%) of the best-validation (12-epoch) architecture among the first b "
        "queries, mean ± std over seeds; overrides: " + (" ".join(args.set) or "none")])
    tables = []
    for dataset in args.datasets:
        test = table.columns[NB201_DATASETS[dataset].test_column]
        tables.append(dataset_table(dataset, results, budgets, seeds_used, f"{test[table.row(RESNET_CELL)]:.2f}",
                                    f"{max(test):.2f}"))
    path = Path(args.md) if args.md else None
    return write_results("nb201_small_budgets", "NAS-Bench-201 at small budgets, beside the published numbers",
                         tables, preamble=preamble, path=path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="searches per strategy and dataset")
    parser.add_argument("--seeds-for", nargs="*", default=[], metavar="STRATEGY=N",
                        help=f"fewer searches for slow strategies (default {SLOW_DEFAULT_SEEDS}, capped by --seeds)")
    parser.add_argument("--first-seed", type=int, default=10_000, help="seeds are first-seed .. first-seed+N-1")
    parser.add_argument("--queries", default="10,20,50,100", help="query budgets, comma-separated")
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--set", nargs="*", default=[], metavar="STRATEGY.KEY=VALUE", help="override a strategy default")
    parser.add_argument("--partial-table", nargs="?", const="true", metavar="[PROXIES]",
                        help="development only: restrict the NB201 space to the rows the zero-cost table has scored "
                             "so far, by every proxy or by those listed (e.g. [synflow,params])")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--chunk", type=int, default=25, help="seeds per worker job")
    parser.add_argument("--md", help="write the markdown table here (default results/nb201_small_budgets.md)")
    parser.add_argument("--out", help="write the raw results as JSON here")
    args = parser.parse_args(argv)

    budgets = sorted({int(b) for b in args.queries.split(",")})
    few = {**SLOW_DEFAULT_SEEDS, **{k: int(v) for k, _, v in (item.partition("=") for item in args.seeds_for)}}
    seeds_used = {name: min(args.seeds, few.get(name, args.seeds)) for name in args.strategies}
    jobs = []
    for name in sorted(args.strategies, key=lambda n: n not in few):   # slow ones first: the pool packs better
        seeds = list(range(args.first_seed, args.first_seed + seeds_used[name]))
        for dataset in args.datasets:
            jobs += [(name, dataset, seeds[i:i + args.chunk], budgets, args.set, args.partial_table)
                     for i in range(0, len(seeds), args.chunk)]
    results: dict = {name: {} for name in args.strategies}
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_budgets, job): job for job in jobs}
        for future in as_completed(futures):
            name, dataset = futures[future][:2]
            runs = results[name].setdefault(dataset, [])
            runs += future.result()
            if len(runs) == seeds_used[name]:
                print(f"{name:>22} {dataset:>10}: " + "  ".join(f"{b}: {mean_std([r[0][b] for r in runs])}"
                                                                for b in budgets)
                      + f"  ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    print(write_table(args, results, seeds_used, budgets, time.perf_counter() - start).read_text())
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"queries": budgets, "first_seed": args.first_seed, "overrides": args.set,
                       "partial_table": args.partial_table, "results": results}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
