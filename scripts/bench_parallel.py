"""Parallel trials: wall time of 16 fixed-cost trials with executor local, processes and ray.

Each trial trains a small MLP for a fixed number of SGD steps on one CPU thread (real, equal work per
trial). Start-up (spawning workers, starting Ray, shipping the estimator) is timed apart from the
trials; speed-ups are trial wall time of `local` divided by that of each parallel executor, measured in
the same run. Goal on 2 free cores: >= 1.7x for processes (2 workers) and ray (local, 2 CPUs).

    python scripts/bench_parallel.py [--trials 16] [--steps 400] [--workers 2] [--repeats 1] [--skip-ray]

With --repeats N the executors take turns N times and the medians are printed (steadier on a busy machine).
The table goes to results/parallel.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from nasrun.estimators import Estimator, Evaluation
from nasrun.executors import TrialJob
from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from results_file import write_results


class FixedWorkEstimator(Estimator):
    """`steps` SGD steps of a 128-512-10 MLP on a fixed synthetic batch: the same CPU work every trial."""

    needs_data = False

    def __init__(self, steps: int):
        self.steps = steps

    def evaluate(self, arch, seed, report=None):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(256, 128, generator=generator)
        y = (x[:, :10].argmax(1))
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(self.steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            return Evaluation({"val_accuracy": (model(x).argmax(1) == y).float().mean().item()})


def time_executor(executor, estimator, trials: int) -> tuple[float, float, list]:
    """(start-up seconds, seconds for all trials, trials) with `workers` trials in flight, as the runner does."""
    start = time.perf_counter()
    executor.start(estimator)
    started = time.perf_counter()
    done, next_id, pending = [], 0, 0
    while len(done) < trials:
        while pending < executor.workers and next_id < trials:
            executor.submit(TrialJob(next_id, [next_id], 1000 + next_id))
            next_id, pending = next_id + 1, pending + 1
        finished = executor.wait()
        pending -= len(finished)
        done.extend(trial for trial, _ in finished)
    elapsed = time.perf_counter() - started
    executor.shutdown()
    return started - start, elapsed, sorted(done, key=lambda t: t.id)


def components(overrides: list[str], group: str):
    """The `group` component `nasrun <overrides>` would build."""
    return getattr(build_components(compose_run_config(overrides), [group]), group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    estimator = FixedWorkEstimator(args.steps)
    estimator.bind(None, None, components(["hardware=cpu", "hardware.threads=1"], "hardware"))
    estimator.evaluate([0], 0)  # torch's one-off lazy set-up, paid here for local (workers pay theirs in trials)
    executors = {"local": lambda: components(["executor=local"], "executor"),
                 "processes": lambda: components(["executor=processes", f"executor.workers={args.workers}"], "executor")}
    if not args.skip_ray:
        executors["ray"] = lambda: components(["executor=ray", f"executor.local_cpus={args.workers}", "executor.num_cpus=1",
                                               "executor.object_store_mb=128"], "executor")
    setting = (f"{args.trials} trials x {args.steps} steps, {args.workers} workers, load average at the start "
               f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, {args.repeats} repeat(s)")
    print(setting)
    times = {name: [] for name in executors}
    reference = None
    for _ in range(args.repeats):
        for name, make in executors.items():
            startup, elapsed, done = time_executor(make(), estimator, args.trials)
            assert all(t.ok for t in done), [t.error for t in done if not t.ok]
            scores = [t.metrics["val_accuracy"] for t in done]
            reference = reference or scores
            assert scores == reference, f"{name} scored the trials differently from local"
            times[name].append((startup, elapsed, statistics.median(t.seconds for t in done)))
    print(f"{'executor':<10} {'start-up s':>10} {'trials s':>9} {'speed-up':>9}  per-trial s (median)")
    baseline = statistics.median(elapsed for _, elapsed, _ in times["local"])
    rows = []
    for name, runs in times.items():
        startup, elapsed, per_trial = (statistics.median(column) for column in zip(*runs))
        print(f"{name:<10} {startup:>10.2f} {elapsed:>9.2f} {baseline / elapsed:>8.2f}x  {per_trial:.2f}")
        rows.append([name, f"{startup:.2f}", f"{elapsed:.2f}", f"{baseline / elapsed:.2f}x", f"{per_trial:.2f}"])
    write_results("parallel", "Parallel trials: local, processes and Ray", [(setting, [
        "executor", "start-up s", "trials s", "speed-up over local", "per-trial s (median)"], rows)])


if __name__ == "__main__":
    main()
