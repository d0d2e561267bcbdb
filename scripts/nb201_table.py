"""Reproduce Table 5 of the NAS-Bench-201 paper with nasrun's strategies and the tabular estimator.

For each strategy and dataset: N seeds of a search of `--queries` queries (the paper's 12,000 s budget
is about 100 queries), each seeing only the 12-epoch validation accuracy; the best-found architecture's
200-epoch test accuracy is reported as mean ± std over seeds, next to the paper's numbers.

Space, strategy and estimator are built from the packaged configs (`nasrun strategy=<name>
search_space=nb201 estimator=nb201 estimator.dataset=<dataset>`, through build_components); each
search is nasrun's Runner without a run directory (it writes no files), so that thousands of searches
take minutes.

    python scripts/nb201_table.py                       # 500 seeds (TPE 100, REINFORCE 200), all strategies
    python scripts/nb201_table.py --seeds 50 --strategies random reinforce --set reinforce.lr=0.02
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from results_file import write_results


STRATEGIES = ["random", "regularized_evolution", "reinforce", "tpe", "local_search", "local_search_first", "evolution"]
SLOW_DEFAULT_SEEDS = {"tpe": 100, "reinforce": 200}   # optuna / a torch update per query: ~10-50x slower
DATASETS = ["cifar10", "cifar100", "imagenet16"]
PAPER = {  # NB201 paper, Table 5 (mean ± std over 500 runs, 200-epoch test accuracy)
    "regularized_evolution": {"cifar10": (93.92, 0.30), "cifar100": (71.84, 0.99), "imagenet16": (45.54, 1.03)},
    "reinforce": {"cifar10": (93.85, 0.37), "cifar100": (71.71, 1.09), "imagenet16": (45.24, 1.18)},
    "random": {"cifar10": (93.70, 0.36), "cifar100": (71.04, 1.07), "imagenet16": (44.57, 1.25)},
    "bohb": {"cifar10": (93.61, 0.52), "cifar100": (70.85, 1.28), "imagenet16": (44.42, 1.49)},
}
PAPER_RESNET = {"cifar10": 93.97, "cifar100": 70.86, "imagenet16": 43.63}
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def nb201_config(name: str, dataset: str, overrides: list[str]):
    """The config `nasrun strategy=<name> search_space=nb201 estimator=nb201` composes, with the
    `name.key=value` overrides meant for this strategy applied as `strategy.key=value`."""
    from nasrun.commands.common import compose_run_config

    mine = [f"strategy.{o.partition('.')[2]}" for o in overrides if o.partition(".")[0] == name]
    return compose_run_config([f"strategy={name}", "search_space=nb201", "estimator=nb201",
                               f"estimator.dataset={dataset}", "hardware=cpu", *mine])


def search(strategy, estimator, space, hardware, seed: int, queries: int) -> tuple[float, list[float]]:
    """One search by nasrun's Runner in memory (no run directory): (200-epoch test accuracy of the
    best-found architecture, best-so-far validation curve)."""
    from nasrun.estimators import Evaluation
    from nasrun.executors.local import LocalExecutor
    from nasrun.records import best_trial
    from nasrun.run.runner import Budget, Runner

    runner = Runner(space, strategy, estimator, LocalExecutor(), None, hardware, None, seed, Budget(queries),
                    show_progress=False, final_test=False)
    runner.run()
    curve, best = [], None
    for trial in sorted(runner.trials, key=lambda t: t.id):
        best = trial if best is None or trial.score() > best.score() else best
        curve.append(best.score())
    best = best_trial(runner.trials)
    test = estimator.test(space.from_json(best.arch), Evaluation(dict(best.metrics)), 0)
    return test["test_accuracy"] * 100, curve


def run_cell(job: tuple) -> list[float]:
    """Test accuracies of `seeds` searches of one strategy on one dataset (runs in a worker process)."""
    name, dataset, seeds, queries, overrides = job
    import torch

    from nasrun.build import build_components

    torch.set_num_threads(1)
    cfg = nb201_config(name, dataset, overrides)
    parts = build_components(cfg, ["hardware", "search_space", "estimator"])
    return [search(build_components(cfg, ["strategy"]).strategy, parts.estimator, parts.search_space, parts.hardware,
                   seed, queries)[0] for seed in seeds]


def table_rows(results: dict, seeds_used: dict) -> list[list[str]]:
    from nasrun.estimators.nb201 import NB201_DATASETS, load_table

    table = load_table()
    rows = []
    for name, by_dataset in results.items():
        row = [f"{name} (n={seeds_used[name]})"]
        for dataset in DATASETS:
            values = by_dataset.get(dataset)
            ours = f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}" if values else "-"
            paper = PAPER.get(name, {}).get(dataset)
            row += [ours, f"{paper[0]:.2f} ± {paper[1]:.2f}" if paper else "-"]
        rows.append(row)
    resnet_row, optimum_row = ["ResNet cell"], ["optimum"]
    for dataset in DATASETS:
        test = table.columns[NB201_DATASETS[dataset].test_column]
        resnet_row += [f"{test[table.row(RESNET_CELL)]:.2f}", f"{PAPER_RESNET[dataset]:.2f}"]
        optimum_row += [f"{max(test):.2f}", f"{max(test):.2f}"]
    return rows + [resnet_row, optimum_row]


TITLE = "NAS-Bench-201, 200-epoch test accuracy of the best-found architecture (%)"
COLUMNS = ["method", *(f"{dataset} {who}" for dataset in DATASETS for who in ("ours", "paper"))]


def print_table(rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=TITLE)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=500, help="searches per strategy and dataset")
    parser.add_argument("--seeds-for", nargs="*", default=[], metavar="STRATEGY=N",
                        help=f"fewer searches for slow strategies (default {SLOW_DEFAULT_SEEDS}, capped by --seeds)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed+N-1")
    parser.add_argument("--queries", type=int, default=100, help="queries per search (~ the paper's 12,000 s)")
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--set", nargs="*", default=[], metavar="STRATEGY.KEY=VALUE", help="override a strategy default")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out", help="write the raw results as JSON here")
    args = parser.parse_args(argv)

    few = {**SLOW_DEFAULT_SEEDS, **{k: int(v) for k, _, v in (item.partition("=") for item in args.seeds_for)}}
    seeds_used = {name: min(args.seeds, few.get(name, args.seeds)) for name in args.strategies}
    cells = [(name, dataset) for name in args.strategies for dataset in args.datasets]
    cells.sort(key=lambda cell: cell[0] not in few)   # slow ones first: the pool packs better
    results: dict = {name: {} for name in args.strategies}
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_cell, (name, dataset, range(args.first_seed, args.first_seed + seeds_used[name]),
                                          args.queries, args.set)): (name, dataset) for name, dataset in cells}
        for future in as_completed(futures):
            (name, dataset), values = futures[future], future.result()
            results[name][dataset] = values
            print(f"{name:>22} {dataset:>10}: {statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f} "
                  f"(n={len(values)}, {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    rows = table_rows(results, seeds_used)
    print_table(rows)
    settings = (f"{args.queries} queries per search; seeds from {args.first_seed}; {time.perf_counter() - start:.1f} s "
                f"in all; overrides: {args.set or 'none'}")
    print(settings)
    write_results("nb201_table5", "NAS-Bench-201: Table 5 with nasrun's strategies", [(TITLE, COLUMNS, rows)],
                  notes=f"{settings}. Paper: Dong & Yang, ICLR 2020, Table 5 (mean ± std over 500 runs).")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"queries": args.queries, "first_seed": args.first_seed, "overrides": args.set,
                       "results": results}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
