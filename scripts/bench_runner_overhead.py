"""The Runner's own overhead per trial on a tabular benchmark (goal: <= 1 ms).

Times the real Runner (NB201 space, random search, NB201 tabular estimator, local executor, a temporary
run dir, no progress display) against a bare loop that calls the same strategy and estimator directly
(ask → evaluate → tell). Overhead per trial = difference of the per-trial times. Each is the best of
`--repeats` runs, after a short warm-up run that pays the one-time imports (the table, TensorBoard's
writer). The Runner is timed as the CLI runs it (TensorBoard scalars when the tensorboard package is
installed) and with `tensorboard=false`; then with the default tracker (`tracker=optuna`: every trial
into an Optuna study in a journal file, on a writer thread, all writes finished before the run ends) on
`--tracker-trials` trials, beside the same study in Optuna's own journal backend (an fsync per entry) and
in its SQLite storage (what nasrun used before), and the same Runner without a tracker.

    python scripts/bench_runner_overhead.py --trials 2000
    python scripts/bench_runner_overhead.py --durable-log    # fsync every trials.jsonl line (training runs)

The figures go to results/overhead_runner.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from pathlib import Path

from nasrun.assessment.objectives import Objectives
from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from nasrun.estimators.nb201 import load_table
from nasrun.records import Trial
from nasrun.run import optuna_study
from nasrun.run.runner import Budget, Experiment, Runner
from nasrun.run.tensorboard import tensorboard_available
from results_file import write_results

CONFIG = ["search_space=nb201", "strategy=random", "estimator=nb201", "hardware=cpu", "executor=local"]


def components():
    """Fresh components of `nasrun search_space=nb201 estimator=nb201 hardware=cpu` (random search)."""
    return build_components(compose_run_config(CONFIG))


def bare_loop(trials: int, seed: int) -> float:
    """Seconds for `trials` ask → evaluate → tell steps with nothing else around them."""
    parts = components()
    space, strategy, estimator = parts.search_space, parts.strategy, parts.estimator
    estimator.bind(space, None, None)
    start = time.perf_counter()
    strategy.bind(space, seed, trials)
    for trial_id in range(trials):
        arch = strategy.ask(1)[0]
        evaluation = estimator.evaluate(arch, seed)
        strategy.tell([Trial(trial_id, arch, evaluation.metrics)])
    return time.perf_counter() - start


def optuna_storage(kind: str, path):
    """Optuna's own storages, for comparison: "sqlite" (what nasrun used first), "journal_fsync" (Optuna's
    journal file backend as it is, an fsync per entry: what nasrun used next)."""
    import optuna

    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{Path(path).with_suffix('.db')}")
    backend, _ = optuna_study.optuna_journal_file()
    return optuna.storages.JournalStorage(backend(str(path)))


@contextlib.contextmanager
def other_storage(kind: str | None):
    """Within the block the Optuna tracker writes to `optuna_storage(kind)` (None: nasrun's own journal)."""
    journal = optuna_study.open_storage
    if kind is not None:
        optuna_study.open_storage = lambda path: optuna_storage(kind, path)
    try:
        yield
    finally:
        optuna_study.open_storage = journal


def runner_loop(trials: int, seed: int, durable_log: bool, tensorboard: bool, tracker: str | None = None) -> float:
    """Seconds for a whole Runner.run() of `trials` trials (summary and final test included); `tracker`
    "journal" adds the Optuna study log the CLI adds by default ("journal_fsync", "sqlite": in Optuna's
    own storages instead)."""
    parts = components()
    with tempfile.TemporaryDirectory() as root, other_storage(None if tracker == "journal" else tracker):
        run_dir = Path(root) / "run"
        trackers = [optuna_study.OptunaStudyLog(Path(root) / optuna_study.DATABASE, "run", parts.search_space,
                                                Objectives(), run_dir, {})] if tracker else []
        experiment = Experiment(parts.search_space, parts.strategy, parts.estimator, parts.executor, parts.hardware,
                                Budget(trials), seed=seed, durable_log=durable_log)
        runner = Runner(experiment, run_dir, show_progress=False, tensorboard=tensorboard, trackers=trackers)
        start = time.perf_counter()
        runner.run()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--durable-log", action="store_true", help="fsync each trials.jsonl line")
    parser.add_argument("--tracker-trials", type=int, default=300, help="trials of the runs with the Optuna tracker")
    args = parser.parse_args()
    logging.getLogger("nasrun").setLevel(logging.WARNING)
    load_table()  # both sides start with the table in memory
    runner_loop(20, 0, args.durable_log, True)  # warm-up: one-time imports
    bare = min(bare_loop(args.trials, seed) for seed in range(args.repeats)) / args.trials
    rows = [["bare loop (strategy + estimator)", f"{bare * 1e3:.3f}", "-", "-", "-"]]
    print(f"bare loop (strategy + estimator): {bare * 1e3:.3f} ms/trial")
    for tensorboard in ([True, False] if tensorboard_available() else [False]):
        runner = min(runner_loop(args.trials, seed, args.durable_log, tensorboard)
                     for seed in range(args.repeats)) / args.trials
        label = f"Runner (durable_log={args.durable_log}, tensorboard={tensorboard})"
        print(f"{label}: {runner * 1e3:.3f} ms/trial; overhead {(runner - bare) * 1e3:.3f} ms/trial "
              f"(goal <= 1 ms); ratio runner/bare = {runner / bare:.2f}")
        rows.append([label, f"{runner * 1e3:.3f}", f"{(runner - bare) * 1e3:.3f}", f"{runner / bare:.2f}", "-"])
    tensorboard = tensorboard_available()
    plain = min(runner_loop(args.tracker_trials, seed, args.durable_log, tensorboard)
                for seed in range(args.repeats)) / args.tracker_trials
    label = f"Runner as the CLI runs it, no tracker, {args.tracker_trials} trials"
    print(f"{label}: {plain * 1e3:.3f} ms/trial; overhead {(plain - bare) * 1e3:.3f} ms/trial")
    rows.append([label, f"{plain * 1e3:.3f}", f"{(plain - bare) * 1e3:.3f}", f"{plain / bare:.2f}", "-"])
    for tracker, what in (("journal", "nasrun's Optuna journal, the default"),
                          ("journal_fsync", "Optuna's journal file as it is: an fsync per entry"),
                          ("sqlite", "Optuna's SQLite storage")):
        runner_loop(20, 0, args.durable_log, tensorboard, tracker)  # warm-up: the storage's imports
        runner = min(runner_loop(args.tracker_trials, seed, args.durable_log, tensorboard, tracker)
                     for seed in range(args.repeats)) / args.tracker_trials
        label = f"Runner as the CLI runs it + tracker=optuna ({what}), {args.tracker_trials} trials"
        print(f"{label}: {runner * 1e3:.3f} ms/trial; overhead {(runner - bare) * 1e3:.3f} ms/trial, "
              f"of which the tracker {(runner - plain) * 1e3:.3f}")
        rows.append([label, f"{runner * 1e3:.3f}", f"{(runner - bare) * 1e3:.3f}", f"{runner / bare:.2f}",
                     f"{(runner - plain) * 1e3:.3f}"])
    write_results("overhead_runner", "The Runner's overhead per tabular trial",
                  [(f"NB201 random search on the table, {args.trials} trials, best of {args.repeats} runs",
                    ["what", "ms per trial", "overhead ms per trial (goal <= 1)", "ratio to bare loop",
                     "tracker's ms per trial (vs the same Runner without it)"], rows)])


if __name__ == "__main__":
    main()
