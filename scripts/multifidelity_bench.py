"""Multi-fidelity search against random search with full training, measured in one invocation.

On digits and on the real CIFAR-10 sample (written in torchvision's `cifar-10-batches-py` layout and read
by `dataset=cifar10`), for each seed: random search training every architecture for `--epochs`, then
Hyperband and ASHA (min 1 epoch, eta 3, max `--epochs`) at about a third of random search's epochs, at
about the same epochs, and at random search's wall time; proxy_guided and regularized evolution (full
training of every architecture they propose) at a third of random search's trials and at as many. Every search is nasrun's Runner in memory
(components from the packaged configs via build_components); reported per method: epochs trained
(a continued trial counts only its extra epochs), best validation accuracy, the final architecture's test
accuracy, wall seconds, as mean ± std over seeds.

    python scripts/multifidelity_bench.py                          # digits + CIFAR-10 sample, ~35 min on 2 cores
    python scripts/multifidelity_bench.py --datasets digits            # 7 min
    python scripts/multifidelity_bench.py --datasets cifar10           # 25 min (500 training images)

Each dataset's table goes to results/multifidelity_<dataset>.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cifar10_sample  # noqa: E402
from results_file import write_results  # noqa: E402
from nasrun.machine import prepare_openmp  # noqa: E402

prepare_openmp()  # idle OpenMP threads sleep, as in `nasrun` (set before torch loads; nasrun/machine.py)


def epochs_spent(trials, full_epochs: int) -> int:
    """Epochs trained: a fresh trial its fidelity (or the full epochs), a continued one what it added."""
    by_id = {t.id: t for t in trials}
    return sum((t.fidelity or full_epochs) - (by_id[t.continues].fidelity if t.continues is not None else 0)
               for t in trials if t.ok)


def search(overrides: list[str], data, trials: int, seconds: float | None) -> dict:
    from nasrun.commands.common import compose_run_config
    from nasrun.experiment import check
    from nasrun.run.runner import Budget, Experiment, Runner

    cfg = compose_run_config(overrides)
    parts = check(cfg).parts  # built, the strategy's fidelities fitted to the estimator
    parts.hardware.apply()
    start = time.perf_counter()
    runner = Runner(Experiment(parts.search_space, parts.strategy, parts.estimator, parts.executor, parts.hardware,
                               Budget(trials, seconds), data=data, seed=cfg.seed), None, show_progress=False)
    summary = runner.run()
    return {"epochs": epochs_spent(runner.trials, cfg.estimator.epochs), "trials": len(runner.trials),
            "best_val": summary["best_val_accuracy"], "test": summary["test"]["test_accuracy"],
            "seconds": time.perf_counter() - start}


def mf_trials_for(epochs_target: int, strategy: str, max_epochs: int, common: list[str]) -> int:
    """The trial budget at which `strategy`'s schedule spends about `epochs_target` epochs (Hyperband's is
    fixed; ASHA's depends on the scores, so it is estimated on a scoring-free replay with seed 0)."""
    from nasrun.records import Trial
    from nasrun.build import build_components
    from nasrun.commands.common import compose_run_config

    cfg = compose_run_config([*common, f"strategy={strategy}"])
    strategy_obj = build_components(cfg, ["search_space", "strategy"])
    space, strat = strategy_obj.search_space, strategy_obj.strategy
    strat.fit_fidelity(max_epochs, "FullTraining")
    strat.bind(space, 0, 10_000)
    trials, spent = [], 0
    while spent < epochs_target:
        proposal = strat.ask(1)[0]
        parent = next((t.fidelity for t in trials if t.id == proposal.continues), 0)
        spent += proposal.fidelity - parent
        trial = Trial(len(trials), space.to_json(proposal.arch), metrics={"val_accuracy": (len(trials) * 7919 % 97) / 97},
                      fidelity=proposal.fidelity, continues=proposal.continues)
        trials.append(trial)
        strat.tell([trial])
    return len(trials)


# Strategies that train every architecture they propose fully: a third of random search's trials is a third
# of its epochs. proxy_guided's zero-cost scores (synflow on the run's data, no training) count in its
# seconds, not its epochs.
FULL_TRAINING_STRATEGIES = ("proxy_guided", "regularized_evolution")


def run_dataset(name: str, data_overrides: list[str], args) -> list[dict]:
    from nasrun.build import build_components
    from nasrun.commands.common import compose_run_config

    common = [*data_overrides, f"estimator.epochs={args.epochs}", "hardware=cpu", "progress=false", "report=false"]
    data = build_components(compose_run_config(common), ["dataset"]).dataset.load()
    rs_epochs = args.rs_configs * args.epochs
    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        base = [*common, f"seed={seed}"]
        rs = search([*base, "strategy=random"], data, args.rs_configs, None)
        rows.append({"dataset": name, "seed": seed, "method": "random search, full training", **rs})
        for strategy in ("hyperband", "asha"):
            for label, target in (("~1/3 the epochs", rs_epochs // 3), ("~equal epochs", rs_epochs)):
                trials = mf_trials_for(target, strategy, args.epochs, common)
                result = search([*base, f"strategy={strategy}"], data, trials, None)
                rows.append({"dataset": name, "seed": seed, "method": f"{strategy}, {label}", **result})
            result = search([*base, f"strategy={strategy}"], data, 10_000, rs["seconds"])
            rows.append({"dataset": name, "seed": seed, "method": f"{strategy}, equal wall time", **result})
        for strategy in FULL_TRAINING_STRATEGIES:
            for label, trials in (("~1/3 the epochs", max(1, args.rs_configs // 3)), ("~equal epochs", args.rs_configs)):
                result = search([*base, f"strategy={strategy}"], data, trials, None)
                rows.append({"dataset": name, "seed": seed, "method": f"{strategy}, {label}", **result})
        print(f"{name} seed {seed} done", file=sys.stderr, flush=True)
    return rows


def mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    values = [v * scale for v in values]
    return f"{statistics.mean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"


COLUMNS = ["method", "epochs", "epochs / RS", "best val %", "test %", "seconds"]


def dataset_rows(rows: list[dict], dataset: str) -> list[list[str]]:
    """One row per method on `dataset`: means over seeds, epochs also as a fraction of random search's."""
    mine = [r for r in rows if r["dataset"] == dataset]
    rs_epochs = statistics.mean(r["epochs"] for r in mine if r["method"].startswith("random"))
    table = []
    for method in dict.fromkeys(r["method"] for r in mine):
        group = [r for r in mine if r["method"] == method]
        epochs = statistics.mean(r["epochs"] for r in group)
        table.append([method, f"{epochs:.0f}", f"{epochs / rs_epochs:.2f}", mean_std([r["best_val"] for r in group], 100),
                      mean_std([r["test"] for r in group], 100), f"{statistics.mean(r['seconds'] for r in group):.0f}"])
    return table


def report(rows: list[dict], args, datasets: dict[str, str]) -> None:
    """Print each dataset's table and write it to results/multifidelity_<dataset>.md."""
    from rich.console import Console
    from rich.table import Table

    caption = f"Multi-fidelity and proxy-guided search vs random search (max {args.epochs} epochs, eta 3), mean ± std over {args.seeds} seeds"
    for dataset, described in datasets.items():
        table = Table(title=f"{caption}: {described}")
        for column in COLUMNS:
            table.add_column(column, justify="right")
        body = dataset_rows(rows, dataset)
        for row in body:
            table.add_row(*row)
        Console(width=150).print(table)
        write_results(f"multifidelity_{dataset}", f"Multi-fidelity and proxy-guided search against random search: {dataset}",
                      [(f"{caption}; {described}", COLUMNS, body)],
                      notes="Epochs count what each trial trained (a continued trial its extra epochs); RS: random "
                            "search, every architecture trained for the full epochs.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "cifar10"], choices=["digits", "cifar10"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=9, help="full training = the maximum fidelity")
    parser.add_argument("--rs-configs", type=int, default=9, help="architectures random search trains fully")
    parser.add_argument("--cifar-train", type=int, default=500, help="CIFAR-10 sample images used for training")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    rows, described = [], {}
    with tempfile.TemporaryDirectory() as root:
        for dataset in args.datasets:
            if dataset == "digits":
                overrides = ["dataset=digits"]
                described[dataset] = "digits (scikit-learn's 8×8 images)"
            else:
                if not cifar10_sample.sample_path().is_file():
                    print(f"skipping cifar10: no sample at {cifar10_sample.sample_path()}", file=sys.stderr)
                    continue
                cifar10_sample.write_cifar10_batches(Path(root))
                overrides = ["dataset=cifar10", f"dataset.root={root}", "dataset.verify=false",
                             f"dataset.train_subset={args.cifar_train}", "dataset.eval_subset=500"]
                described[dataset] = (f"CIFAR-10 sample: {args.cifar_train} training, 500 validation, "
                                      "500 test images")
            rows += run_dataset(dataset, overrides, args)
    report(rows, args, described)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
