"""Robustness measures, and end to end: a constrained multi-objective NSGA-II run, its Pareto front
files, and `nasrun-benchmark` on it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from conftest import TINY, read_jsonl, run_cli, run_dirs
from nasrun.rundir import RunDir
from nasrun.evaluation.benchmark import fgsm_accuracy, noisy_accuracy
from nasrun.datasets.digits import Digits
from nasrun.assessment.objectives import dominates
from nasrun.training import accuracy

OBJECTIVES = "objectives=[{metric:val_accuracy,direction:max},{metric:params,direction:min}]"


@pytest.fixture(scope="module")
def trained_digits_mlp():
    torch.manual_seed(0)
    data = Digits().load()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        for x, y in data.loader("train", 64, shuffle=True):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model, data


def test_fgsm_and_noise_lower_the_accuracy_of_a_trained_net(trained_digits_mlp):
    model, data = trained_digits_mlp
    clean = fgsm_accuracy(model, data, "test", 0.0, "cpu")
    assert clean > 0.85
    assert clean == pytest.approx(noisy_accuracy(model, data, "test", 0.0, "cpu"))
    from nasrun.hardware import Hardware
    assert clean == pytest.approx(accuracy(model, data, "test", Hardware("cpu")))
    attacked = [fgsm_accuracy(model, data, "test", eps, "cpu") for eps in (0.05, 0.2, 0.5)]
    assert attacked[0] < clean and attacked == sorted(attacked, reverse=True) and attacked[-1] < 0.5 * clean
    assert noisy_accuracy(model, data, "test", 2.0, "cpu") < clean


@pytest.mark.slow
def test_constrained_nsga2_run_writes_a_true_pareto_front_and_benchmarks_it(tmp_path):
    args = [*TINY, "report=true", "budget.trials=8", "strategy=nsga2", "strategy.population_size=4", OBJECTIVES,
            "constraints={params:{max:15000}}", "metrics.enabled=[params,flops,memory]"]
    result = run_cli(args, tmp_path, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    assert RunDir(run).pareto_plot.stat().st_size > 1000
    # the result table: each objective's value beside fitness, which the caption defines; nothing cut
    assert "fitness = val_accuracy - params/15000; -inf where a constraint is violated" in result.stderr
    header = next(line for line in result.stderr.splitlines() if "fitness" in line and "rank" in line)
    assert "val_accuracy" in header and "params" in header and "epochs" not in header  # no fidelities here
    assert "…" not in result.stderr
    trials = read_jsonl(RunDir(run).trials)
    for t in trials:
        assert {"params", "flops", "macs", "memory_mb", "feasible", "fitness"} <= set(t["metrics"])
        assert t["metrics"]["feasible"] == int(t["metrics"]["params"] <= 15000)
    feasible = [t for t in trials if t["metrics"]["feasible"]]
    assert feasible and len(feasible) < len(trials), "the constraint should bind on some trials"

    # constraints: no violating architecture is reported as best
    best = json.loads(RunDir(run).best.read_text())
    summary = json.loads(RunDir(run).summary.read_text())
    assert best["metrics"]["params"] <= 15000 and summary["best_trial"] == best["trial"]
    assert best["trial"] in {t["id"] for t in feasible}
    assert summary["feasible_trials"] == len(feasible)

    # the Pareto front is non-dominated and every other feasible trial is dominated by it
    pareto = json.loads(RunDir(run).pareto.read_text())
    point = lambda m: (m["val_accuracy"], -m["params"])  # noqa: E731
    front = [point(e["metrics"]) for e in pareto["front"]]
    assert front and summary["pareto_front"] == [e["trial"] for e in pareto["front"]]
    for t in feasible:
        assert not any(dominates(point(t["metrics"]), p) for p in front)
        if t["id"] not in summary["pareto_front"]:
            assert any(dominates(p, point(t["metrics"])) or p == point(t["metrics"]) for p in front)

    result = run_cli([str(run), "--pareto", "--sigmas", "0,1", "--epsilons", "0,0.3", "hardware.threads=1"], tmp_path,
                     command="nasrun-benchmark", env={"COLUMNS": "80"})  # overrides after the flags
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(RunDir(run).benchmark.read_text())
    assert "…" not in result.stderr  # every number and header whole at 80 columns, piped
    for r in bench["results"]:
        assert f"{r['test_accuracy']:.4f}" in result.stderr and f"{r['params']:,}" in result.stderr
    assert [r["trial"] for r in bench["results"]] == summary["pareto_front"]
    for r, entry in zip(bench["results"], pareto["front"]):
        assert r["params"] == entry["metrics"]["params"]
        assert r["val_accuracy"] == pytest.approx(entry["metrics"]["val_accuracy"])  # same weights or same retraining
        assert set(r["robustness"]["gaussian_noise"]) == {"0.0", "1.0"} and set(r["robustness"]["fgsm"]) == {"0.0", "0.3"}
        assert r["latency_ms"] > 0 and r["memory_mb"] > 0 and math.isfinite(r["flops"])
        assert r["weights"] == ("checkpoint" if r["trial"] == best["trial"] else "retrained")


def test_benchmark_of_a_missing_run_is_a_clear_error(tmp_path):
    result = run_cli([str(tmp_path / "nope")], tmp_path, command="nasrun-benchmark")
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr
