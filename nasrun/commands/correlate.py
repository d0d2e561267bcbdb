"""`nasrun-correlate`: how far one estimator's ranking of architectures agrees with another's.

Both estimators score the same seeded sample of distinct architectures of one search space; the report
gives Kendall τ (tau-b), Spearman ρ, top-k overlap and precision@k of A against B (B is the reference),
as `correlation.json`, `correlation.png` (scatter) and a table.

    nasrun-correlate search_space=nb201 --a "estimator=nb201 estimator.dataset=cifar100" \\
                     --b "estimator=nb201 estimator.dataset=cifar10" --archs 500
    nasrun-correlate --a "estimator=early_stopping estimator.max_epochs=3" --b estimator=full_training --archs 30

    nasrun-correlate search_space=nb201 dataset=cifar10 \
                     --a "estimator=zero_cost estimator.proxy=[synflow,snip]" --metric-a zc_synflow zc_snip \
                     --b "estimator=nb201 estimator.score_column=test_200ep" --archs 1000

Positional overrides apply to both sides; `--a` / `--b` add each side's own (quoted, space-separated).
Each side's metric defaults to its estimator's own score (val_accuracy; zc_score for zero_cost); a metric
the estimator does not record is refused, naming those it does, before anything is loaded or scored.
Several `--metric-a` compare each of side A's metrics with B from one scoring pass (e.g. every proxy of a
zero-cost estimator); the first is the headline, every one is under `by_metric` in the JSON.
"""

from __future__ import annotations

import argparse
import math
import random
import shlex
from datetime import datetime
from pathlib import Path
from typing import Sequence

from nasrun.build import build_components
from nasrun.commands.common import compose_run_config, run_command
from nasrun.config import validate
from nasrun.console import add_row, console, new_table, number_column, print_table, say, text_column
from nasrun.errors import ConfigError
from nasrun.executors import TrialJob, run_trial
from nasrun.reports.correlation import agreement, plot_agreement
from nasrun.rundir import RunDir, atomic_write_json
from nasrun.run.runner import trial_seed


def sample_distinct(space, count: int, seed: int) -> list:
    """`count` distinct architectures (fewer if the space runs out after 100 draws per architecture)."""
    rng, archs, keys = random.Random(seed), [], set()
    for _ in range(100 * count):
        if len(archs) == count:
            break
        arch = space.sample(rng)
        if space.key(arch) not in keys:
            keys.add(space.key(arch))
            archs.append(arch)
    return archs


def configured(overrides: list[str], seed: int):
    """(config, components) of one side, built but not bound: nothing loaded or trained yet."""
    cfg = compose_run_config([*overrides, f"seed={seed}"])
    validate(cfg)
    return cfg, build_components(cfg, ["hardware", "search_space", "estimator", "dataset"])


def check_recorded(estimator, metrics: Sequence[str], option: str, name: str) -> None:
    """A one-line ConfigError, before anything is scored, for a metric the estimator does not record."""
    missing = [metric for metric in metrics if metric not in estimator.reports]
    if missing:
        raise ConfigError(f"{option} {missing[0]}: estimator {name} records {list(estimator.reports)} "
                          f"(its score is {estimator.score_metric}, the default)")


def bind(parts, seed: int):
    """Load the side's data (if its estimator needs any) and bind the estimator; returns it."""
    parts.hardware.apply()
    data = parts.dataset.load() if parts.estimator.needs_data else None
    parts.estimator.bind(parts.search_space, data, parts.hardware, None, seed)
    return parts.estimator


def scores(estimator, archs: list, metrics: Sequence[str], seed: int, label: str) -> list[dict[str, float | None]]:
    """Each architecture's `metrics` (None where the evaluation failed, lacks one or it is not finite)."""
    values = []
    with console.status(f"{label}: scoring") as status:
        for index, arch in enumerate(archs):
            trial, _ = run_trial(estimator, TrialJob(index, arch, trial_seed(seed, index)))
            found = {m: trial.metrics.get(m) if trial.ok else None for m in metrics}
            values.append({m: float(v) if v is not None and math.isfinite(v) else None for m, v in found.items()})
            status.update(f"{label}: scored {index + 1}/{len(archs)}")
    return values


def correlate(shared: list[str], side_a: list[str], side_b: list[str], archs: int, seed: int,
              metrics: tuple[Sequence[str] | str | None, str | None], out: Path) -> dict:
    """Score one sample with both sides; agreement of each of A's metrics with B's, headed by the first.
    A metric left None is that side's estimator's own score (`score_metric`: zc_score for zero_cost)."""
    cfg_a, parts_a = configured([*shared, *side_a], seed)
    cfg_b, parts_b = configured([*shared, *side_b], seed)
    space_a, space_b = parts_a.search_space, parts_b.search_space
    if space_a.name != space_b.name:
        raise ConfigError(f"both sides must search one space, got {space_a.name} and {space_b.name}")
    metrics_a = [metrics[0]] if isinstance(metrics[0], str) else list(metrics[0] or [parts_a.estimator.score_metric])
    metric_b = metrics[1] or parts_b.estimator.score_metric
    check_recorded(parts_a.estimator, metrics_a, "--metric-a", cfg_a.estimator.get("name", "A"))
    check_recorded(parts_b.estimator, [metric_b], "--metric-b", cfg_b.estimator.get("name", "B"))
    estimator_a, estimator_b = bind(parts_a, seed), bind(parts_b, seed)
    sample = sample_distinct(space_a, archs, seed)
    a = scores(estimator_a, sample, metrics_a, seed, "A")
    b = [row[metric_b] for row in scores(estimator_b, sample, [metric_b], seed, "B")]
    by_metric = {}
    for metric in metrics_a:
        kept = [i for i in range(len(sample)) if a[i][metric] is not None and b[i] is not None]
        if len(kept) < 3:
            raise ConfigError(f"only {len(kept)} of {len(sample)} architectures have both scores "
                              f"({metric} / {metric_b}): nothing to correlate")
        by_metric[metric] = {"scored_by_both": len(kept), **agreement([a[i][metric] for i in kept], [b[i] for i in kept])}
    head, kept = metrics_a[0], [i for i in range(len(sample)) if a[i][metrics_a[0]] is not None and b[i] is not None]
    result = {"space": space_a.name, "seed": seed, "sampled": len(sample), **by_metric[head],
              "a": {"overrides": [*shared, *side_a], "metric": head},
              "b": {"overrides": [*shared, *side_b], "metric": metric_b},
              **({"by_metric": by_metric} if len(metrics_a) > 1 else {}),
              "architectures": [{"arch": space_a.to_json(sample[i]), "a": a[i][head], "b": b[i],
                                 **({"a_metrics": a[i]} if len(metrics_a) > 1 else {})} for i in range(len(sample))]}
    labels = (f"A: {cfg_a.estimator.name} {head}", f"B: {cfg_b.estimator.name} {metric_b}")
    title = f"{space_a.name}, {len(kept)} architectures: τ={result['kendall_tau']:.3f} ρ={result['spearman_rho']:.3f}"
    with RunDir(out).writing():  # its lock, and no link leading out of it
        atomic_write_json(out / "correlation.json", result)
        plot_agreement([a[i][head] for i in kept], [b[i] for i in kept], labels, title, out / "correlation.png")
    return result


def print_result(result: dict, out: Path) -> None:
    by_metric = result.get("by_metric") or {result["a"]["metric"]: result}
    explained = "top-k: overlap of A's and B's k best / precision: share of A's k best among B's best 10%"
    table = new_table(f"A against B ({result['b']['metric']}) on {result['sampled']} architectures of "
                      f"{result['space']}", explained if result["top_k"] else None)
    text_column(table, "A's metric")
    for column in ("scored", "Kendall τ", "Spearman ρ", *(f"top-{k}" for k in result["top_k"])):
        number_column(table, column)
    for metric, row in by_metric.items():
        add_row(table, metric, row["scored_by_both"], f"{row['kendall_tau']:.3f}", f"{row['spearman_rho']:.3f}",
                *(f"{v['overlap']:.2f} / {v['precision']:.2f}" for v in row["top_k"].values()))
    print_table(table)
    say(f"wrote {out / 'correlation.json'} and {out / 'correlation.png'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-correlate", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="overrides for both sides, e.g. search_space=nb201")
    parser.add_argument("--a", default="", help="side A's own overrides (quoted)")
    parser.add_argument("--b", default="", help="side B's own overrides, the reference (quoted)")
    parser.add_argument("--archs", type=int, default=100, help="architectures sampled (distinct)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metric-a", nargs="+", default=None,
                        help="one or more of A's metrics (default: its estimator's score, e.g. zc_score for zero_cost)")
    parser.add_argument("--metric-b", default=None, help="B's metric (default: its estimator's score)")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/correlate/<date>_<time>")
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after the flags
    if args.archs < 3 or args.seed < 0:
        parser.error("--archs must be at least 3 and --seed non-negative")
    out = args.out or Path("outputs") / "correlate" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")

    def body() -> None:
        result = correlate(args.overrides, shlex.split(args.a), shlex.split(args.b), args.archs, args.seed,
                           (args.metric_a, args.metric_b), out)
        print_result(result, out)

    run_command("nasrun-correlate", body)
