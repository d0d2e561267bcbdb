"""Warnings before a search whose result would mislead: a trial budget that leaves a strategy random search
(evolution with a population of 20 and 8 trials never breeds), and a sweep (`nasrun -m strategy=a,b,...`)
in which several strategies are random search at their budget, so that they cannot differ but by chance.

What counts is each strategy's `random_start(space)` (nasrun/strategies/base.py): how many of its first
proposals are random samples whatever the results.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from nasrun.build import build_components
from nasrun.strategies import RandomStart, Strategy

IGNORED_IN_SWEEPS = ("seed", "hydra")  # overrides that cannot make strategies differ (or are Hydra's own)


def random_start_warning(name: str, strategy: Strategy, space, trials: int) -> str | None:
    """One line when `trials` leaves `strategy` nothing but its random start, else None."""
    start = strategy.random_start(space)
    if not is_random_search(strategy, start, trials) or start.setting is None:  # random search by design
        return None
    if start.always:
        return f"strategy {name} proposes only random samples ({start.setting}): this run is random search; " \
               f"{start.advice}"
    advice = f" or {start.advice}" if start.advice else ""
    return (f"strategy {name} proposes random samples for its first {int(start.trials)} trials "
            f"({start.setting}), so with budget.trials={trials} this run is random search; raise budget.trials "
            f"above {int(start.trials)}{advice}")


def is_random_search(strategy: Strategy, start: RandomStart, trials: int) -> bool:
    return not strategy.one_shot and trials <= start.trials


@dataclass
class SweepJob:
    strategy: str
    start: RandomStart
    trials: int
    random: bool       # the strategy is random search at this budget


def sweep_warnings(overrides: list[str]) -> list[str]:
    """For a multirun over strategies: one line per combination of the other settings in which two or more
    strategies are random search at their budget. Seeds do not matter; a sweep that cannot be expanded or
    composed here is left to Hydra (no warning)."""
    try:
        jobs = expand_sweep(overrides)
    except Exception:  # noqa: BLE001 - Hydra reports malformed overrides itself
        return []
    if len({strategy for strategy, _ in jobs}) < 2:
        return []
    groups: dict[tuple, list[SweepJob]] = {}
    for strategy_overrides, others in jobs:
        job = compose_job([*strategy_overrides, *others])
        if job is not None:
            groups.setdefault(others, []).append(job)
    return [line for others, group in groups.items()
            if (line := sweep_warning(group, others if len(groups) > 1 else ()))]


def sweep_warning(jobs: list[SweepJob], others: tuple) -> str | None:
    """The line for one combination of settings (`others`), or None when at most one strategy is random."""
    random = [job for job in jobs if job.random]
    if len({job.strategy for job in random}) < 2:
        return None
    budget = ", ".join(sorted({str(job.trials) for job in random}))
    why = "; ".join(f"{job.strategy}: always" if job.start.always else
                    f"{job.strategy}: its first {int(job.start.trials)} ({job.start.setting})" for job in random)
    finite = [int(job.start.trials) for job in random if not job.start.always]
    where = f" [{' '.join(others)}]" if others else ""
    fix = f"; raise budget.trials above {max(finite)} to compare them" if finite else ""
    return (f"sweep{where}: strategies {', '.join(job.strategy for job in random)} cannot differ but by chance: "
            f"at budget.trials={budget} each proposes only random samples ({why}){fix}")


def expand_sweep(overrides: list[str]) -> list[tuple[tuple, tuple]]:
    """The distinct jobs of a sweep as (strategy overrides, other overrides), seeds and Hydra's own left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.key_or_group.split(".")[0].split("/")[0] in IGNORED_IN_SWEEPS:
            continue
        values = override.sweep_string_iterator() if override.is_sweep_override() \
            else [override.get_value_element_as_str()]
        choices.append([(override.key_or_group, f"{key}={value}") for value in values])
    jobs = []
    for combination in itertools.product(*choices):
        strategy = tuple(text for group, text in combination if group.split(".")[0] == "strategy")
        others = tuple(text for group, text in combination if group.split(".")[0] != "strategy")
        if (strategy, others) not in jobs:
            jobs.append((strategy, others))
    return jobs


def compose_job(overrides: list[str]) -> SweepJob | None:
    """The job's strategy, its random start and budget, from its composed config (None when it cannot be
    composed or built: the job itself reports that when it runs)."""
    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module(config_module="nasrun.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        parts = build_components(cfg, ["search_space", "strategy"])
        strategy = parts.strategy
        if strategy.multi_fidelity:
            estimator = build_components(cfg, ["estimator"]).estimator
            strategy.fit_fidelity(estimator.max_fidelity, type(estimator).__name__)
        start = strategy.random_start(parts.search_space)
        trials = cfg.budget.trials
    except Exception:  # noqa: BLE001
        return None
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        return None
    name = str(cfg.strategy.get("name", cfg.strategy._target_))
    return SweepJob(name, start, trials, is_random_search(strategy, start, trials))
