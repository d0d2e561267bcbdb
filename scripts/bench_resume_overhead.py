"""What crash safety costs per trial: the runner with its checkpoint (runner.json at most once a second, a
runner_journal.jsonl line for every ask in between, trial_times.jsonl) against the same runner with
checkpointing switched off, on an instant estimator (the worst case: a tabular benchmark, where the
runner's own work is all there is).

    python scripts/bench_resume_overhead.py [--trials 2000]

The figures go to results/overhead_resume.md.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from nasrun.estimators import Estimator, Evaluation
from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from nasrun.run.runner import Budget, Experiment, Runner
from results_file import write_results


class InstantEstimator(Estimator):
    needs_data = False

    def evaluate(self, arch, seed, report=None):
        return Evaluation(metrics={"val_accuracy": random.Random(seed).random()})

    def test(self, arch, evaluation, seed):
        return {}


def run_seconds(trials: int, checkpointing: bool) -> float:
    parts = build_components(compose_run_config(["search_space=nb201", "strategy=random", "hardware=cpu"]),
                             ["hardware", "search_space", "strategy", "executor"])
    with tempfile.TemporaryDirectory() as run_dir:
        experiment = Experiment(parts.search_space, parts.strategy, InstantEstimator(), parts.executor,
                                parts.hardware, Budget(trials), seed=0, final_test=False)
        runner = Runner(experiment, Path(run_dir), show_progress=False, tensorboard=False)
        if not checkpointing:
            runner.observers.remove(runner.checkpoint)
        start = time.perf_counter()
        runner.run()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()
    run_seconds(50, True)  # warm-up
    without = run_seconds(args.trials, False)
    with_checkpoint = run_seconds(args.trials, True)
    per_trial = 1000 * (with_checkpoint - without) / args.trials
    print(f"{args.trials} instant trials: {without:.2f}s without checkpoints, {with_checkpoint:.2f}s with "
          f"({per_trial:.2f} ms per trial; ratio {with_checkpoint / without:.2f}x)")
    write_results("overhead_resume", "What the resume checkpoint costs per trial",
                  [(f"{args.trials} instant trials (NB201 random search, an estimator that returns at once)",
                    ["seconds without checkpoints", "seconds with", "ms per trial", "ratio"],
                    [[f"{without:.2f}", f"{with_checkpoint:.2f}", f"{per_trial:.2f}", f"{with_checkpoint / without:.2f}x"]])])


if __name__ == "__main__":
    main()
