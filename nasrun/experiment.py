"""From a composed config to a finished run: `plan(cfg)` validates the config and builds everything the
search needs once (an Experiment); `run_experiment` runs it in a run directory (nasrun.run.runner.Runner).
Used by the CLI, by resumes and by replays."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig

import nasrun
from nasrun.assessment.assess import assessment_settings, build_assessment
from nasrun.assessment.metrics_config import MetricsConfig
from nasrun.assessment.objectives import Objectives
from nasrun.build import Components, build_components
from nasrun.config import network_limits, validate
from nasrun.errors import NoResult
from nasrun.nets.size import NetworkLimits
from nasrun.hardware import seed_everything, torch_loaded
from nasrun.reports.run_report import write_run_report
from nasrun.console import print_table
from nasrun.run.progress import summary_table
from nasrun.run.ranks import current_rank, takes_run_lock
from nasrun.run.budget_check import random_start_warning
from nasrun.run.cost import cost_estimate
from nasrun.run.runner import Budget, Experiment, Runner
from nasrun.run.proxy_scoring import check_proxy_settings, strategy_needs_data
from nasrun.run.trackers import build_trackers, tracker_names
from nasrun.run.warm_start import warmup_needs_data, warmup_scorer
from nasrun.rundir import RunDir
from nasrun.assessment.space_check import check_space

log = logging.getLogger("nasrun")


def run_experiment(cfg: DictConfig, run_dir: str | Path, show_progress: bool = True, resume: bool = False,
                   saved_config: dict[str, str] | None = None) -> dict:
    """Validate `cfg`, build the components, search, test the best architecture, write the run dir.
    With `resume`, continue the interrupted run already in `run_dir` (see nasrun/run/checkpoint.py).
    The run directory is held (RunDir.writing: its lock, no link leading out) from the start; a new run
    refuses one that holds another run's trials before it writes anything, then saves `saved_config`
    (RunDir.save_config's texts: the config, the overrides, Hydra's settings)."""
    holds_lock = run_dir is not None and takes_run_lock()
    with RunDir(run_dir).writing() if holds_lock else contextlib.nullcontext():
        if holds_lock and not resume:
            RunDir(run_dir).refuse_another_run()
            RunDir(run_dir).save_config(**(saved_config or {}))
        return _plan_and_run(cfg, run_dir, show_progress, resume)


@dataclass
class Checked:
    """A config's components, built and checked before any data is loaded (the first half of `plan`)."""

    parts: Components
    objectives: Objectives
    metrics: MetricsConfig
    limits: NetworkLimits


def check(cfg: DictConfig) -> Checked:
    """Validate `cfg`, build its components and run every check that needs no data: a bad config fails
    before anything is loaded, spawned or trained."""
    validate(cfg)
    tracker_names(cfg)  # an unknown tracker or a missing package, before anything is built
    limits = network_limits(cfg)
    seed_everything(cfg.seed)  # before the components: a constructor may draw random numbers
    parts = build_components(cfg, ["hardware", "search_space", "strategy", "estimator", "executor", "dataset"])
    strategy, estimator = parts.strategy, parts.estimator
    objectives, metrics = assessment_settings(cfg, estimator, strategy.one_shot)  # the metrics they name
    warmup_scorer(strategy)  # an unknown warm-start proxy
    check_proxy_settings(strategy)
    if strategy.multi_fidelity:  # fidelities the estimator cannot train to
        strategy.fit_fidelity(estimator.max_fidelity, type(estimator).__name__)
    return Checked(parts, objectives, metrics, limits)


def plan(cfg: DictConfig, checked: Checked | None = None) -> Experiment:
    """The experiment `cfg` describes, built and checked once: its components (`check(cfg)`, unless
    `checked` holds them already), the data if anything reads it, the assessment, what the summary
    records about the run and the cost estimate."""
    checked = checked or check(cfg)
    parts = checked.parts
    hardware, space, strategy, estimator = parts.hardware, parts.search_space, parts.strategy, parts.estimator
    threads, data = load_data(parts)
    check_space(space, cfg.budget.trials)
    budget_warning = random_start_warning(cfg.strategy.get("name", cfg.strategy._target_), strategy, space,
                                          cfg.budget.trials)
    if budget_warning and current_rank() == 0:  # the other ranks of a distributed run say nothing twice
        log.warning(budget_warning)
    return Experiment(
        space, strategy, estimator, parts.executor, hardware, Budget(cfg.budget.trials, cfg.budget.get("seconds")),
        data=data, seed=cfg.seed, limits=checked.limits,
        assessment=build_assessment(checked.objectives, checked.metrics, space, data, hardware),
        final_test=cfg.get("final_test", True), durable_log=durable_log(cfg, estimator),
        run_info={**run_info(cfg, hardware, threads), "tabular": not estimator.needs_data},  # a lookup: no training time
        cost=cost_estimate(cfg, parts, scale_choice()))


def load_data(parts: Components):
    """Set the process's threads and load the data, when anything reads them: (ThreadChoice | None,
    DataBundle | None). A search of a table reads neither, and never loads torch."""
    hardware, space, strategy, estimator = parts.hardware, parts.search_space, parts.strategy, parts.estimator
    needs_data = (estimator.needs_data or strategy.one_shot or warmup_needs_data(strategy, space)
                  or strategy_needs_data(strategy, space))
    scores_proxies = strategy.proxy_settings is not None or strategy.warmup.proxy is not None
    data = parts.dataset.load() if needs_data else None
    if data is not None:
        log.info("dataset %s: %s, %d classes, input %s", data.name, data.sizes(), data.num_classes, data.input_shape)
    threads = None
    if needs_data or scores_proxies or torch_loaded():
        threads = hardware.apply(data.input_shape if data is not None else None)  # small images: nasrun.machine
        log.info("CPU threads: %d (%s); idle threads wait: %s", threads.threads, threads.why, threads.openmp_wait)
    return threads, data


def _plan_and_run(cfg: DictConfig, run_dir: str | Path | None, show_progress: bool, resume: bool) -> dict:
    checked = check(cfg)
    hardware = checked.parts.hardware
    if int(hardware.devices) <= 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # torchrun's variable
        return _run(cfg, plan(cfg, checked), run_dir, show_progress, resume)  # torch.distributed stays unloaded
    from nasrun import distributed
    from nasrun.run import spawn

    if spawn.should_spawn(hardware, checked.parts.strategy, checked.parts.estimator):
        return spawn.run_spawned(run_experiment, cfg, run_dir, show_progress, resume)
    try:
        group = distributed.init(hardware)  # one of the processes torchrun or `hardware.devices` started
        hardware.device = distributed.rank_device(hardware, group)
        spawn.require_supernet(checked.parts.strategy, checked.parts.estimator)
        experiment = plan(cfg, checked)
        if not group.is_main:  # a rank but 0 of a distributed one-shot search
            return spawn.follow(experiment, run_dir)
        return _run(cfg, experiment, run_dir, show_progress, resume)
    finally:
        distributed.finish()


def _run(cfg: DictConfig, experiment: Experiment, run_dir: str | Path, show_progress: bool, resume: bool) -> dict:
    """Run `experiment` in `run_dir` with the trackers `cfg` asks for; write the report, print the table."""
    objectives = experiment.assessment.objectives
    trackers, watch = build_trackers(cfg, run_dir, experiment.space, objectives,
                                     study_attrs(cfg, experiment.run_info), resume)
    runner = Runner(replace(experiment, run_info={**experiment.run_info, **watch}), run_dir, resume=resume,
                    show_progress=show_progress, trackers=trackers, tensorboard=cfg.get("tensorboard", True))
    summary = runner.run()
    if cfg.get("report", True):
        write_run_report(run_dir)
    print_table(summary_table(runner.trials, experiment.space.describe, summary["test"], run_dir, objectives))
    problem = runner.no_result()
    if problem:
        raise NoResult(f"{problem} (the run directory {run_dir} is written)")
    return summary


def scale_choice() -> str | None:
    """The `scale` option of a run started from the command line (None elsewhere)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("scale") if HydraConfig.initialized() else None


def durable_log(cfg: DictConfig, estimator) -> bool:
    """fsync each trials.jsonl line? `durable_log: null` (default): yes, unless the estimator is a table
    lookup (needs no data), where an fsync would cost more than the trial and a lost line nothing."""
    value = cfg.get("durable_log")
    return estimator.needs_data if value is None else bool(value)


def run_info(cfg: DictConfig, hardware, threads=None) -> dict:
    """What a summary needs to tell two runs apart: components, versions, device, CPU threads, git commit."""
    return {
        "strategy": cfg.strategy.get("name", cfg.strategy._target_),
        "search_space": cfg.search_space.get("name", cfg.search_space._target_),
        "estimator": cfg.estimator.get("name", cfg.estimator._target_),
        "dataset": cfg.dataset.get("name", cfg.dataset._target_),
        "executor": cfg.executor.get("name", cfg.executor._target_),
        **environment(hardware),
        "cpu_threads": threads.record() if threads is not None else None,
    }


def study_attrs(cfg: DictConfig, info: dict) -> dict:
    """What a tracker labels the run with: its components and seed."""
    return {**{key: info[key] for key in ("strategy", "search_space", "estimator", "dataset")}, "seed": cfg.seed}


def package_version(name: str) -> str | None:
    """An installed distribution's version, read from its metadata (importing torchvision for its
    `__version__` costs 2.5 s); None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(hardware) -> dict:
    """Device, library versions, platform and the nasrun checkout's commit (also used by nasrun-train).
    A run that never loaded torch (a table lookup) ran on no device: device, cuda and cudnn are null."""
    import hydra
    import numpy
    import omegaconf

    torch = sys.modules.get("torch")
    return {
        "device": hardware.device if torch else None,
        "device_name": hardware.name() if torch else None,
        "versions": {"nasrun": nasrun.__version__, "python": platform.python_version(),
                     "torch": torch.__version__ if torch else package_version("torch"),
                     "torchvision": package_version("torchvision"), "hydra": hydra.__version__,
                     "omegaconf": omegaconf.__version__, "numpy": numpy.__version__,
                     "cuda": torch.version.cuda if torch else None,
                     "cudnn": torch.backends.cudnn.version() if torch else None},
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
    }


def git_dirty() -> bool | None:
    """Whether the nasrun checkout has uncommitted changes (None outside a checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str | None:
    """The commit of the nasrun checkout, when it runs from one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
