"""`nasrun-compare` on a real tiny sweep, and its aggregation rules on hand-made job directories."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats

from nasrun.rundir import RunDir
from nasrun.reports.compare import best_so_far, compare
from nasrun.reports.plots import anytime_band
from nasrun.reports.significance import mann_whitney

from browser import keep_screenshot, open_page
from conftest import run_cli, run_dirs, write_run_config


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """5 trials: regularized evolution (population 30) proposes the same random samples as random search."""
    root = tmp_path_factory.mktemp("sweep")
    result = run_cli(["-m", "strategy=random,regularized_evolution", "seed=0,1", "search_space=nb201",
                      "estimator=nb201", "budget.trials=5", "progress=false"], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    dirs = run_dirs(root)
    assert len(dirs) == 4
    return dirs[0].parent, result


@pytest.fixture(scope="module")
def sweep(sweep_run) -> Path:
    return sweep_run[0]


@pytest.mark.slow
def test_a_sweep_of_strategies_that_cannot_differ_is_warned_about_and_compared_as_a_tie(sweep_run):
    sweep, launched = sweep_run
    assert "nasrun: warning: sweep: strategies random, regularized_evolution cannot differ" in launched.stderr
    result = run_cli([str(sweep), "--no-plot"], cwd=sweep, command="nasrun-compare")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "random and regularized_evolution: indistinguishable at n=2 seeds (p=1; identical results)" in result.stdout
    comparison = json.loads(RunDir(sweep).comparison.read_text())
    assert [g["rank"] for g in comparison["groups"]] == [1, 1]
    (pair,) = comparison["pairs"]
    assert pair["identical"] and pair["verdict"] == "indistinguishable" and pair["p"] == 1.0


@pytest.mark.slow
def test_compare_a_real_sweep(sweep):
    result = run_cli([str(sweep)], cwd=sweep, command="nasrun-compare")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "random" in result.stdout and "regularized_evolution" in result.stdout
    comparison = json.loads(RunDir(sweep).comparison.read_text())
    groups = {g["group"]: g for g in comparison["groups"]}
    assert set(groups) == {"random", "regularized_evolution"}
    for group in groups.values():
        values = [json.loads(RunDir(sweep / job["dir"]).summary.read_text())["test"]["test_accuracy"]
                  for job in group["jobs"]]
        assert group["runs"] == 2 and group["metric"] == ["test_accuracy"]
        assert group["mean"] == pytest.approx(statistics.mean(values))
        assert group["std"] == pytest.approx(statistics.stdev(values))
        assert (group["best"], group["worst"]) == (max(values), min(values))
        assert group["median"] == pytest.approx(statistics.median(values))
    assert RunDir(sweep).anytime_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_comparison_page(sweep, comparison)


def assert_comparison_page(sweep: Path, comparison: dict) -> None:
    """comparison.html in headless chromium: ranked groups, every job linked to its report, the plot, offline."""
    page = RunDir(sweep).comparison_page
    html = page.read_text()
    try:
        assert "http://" not in html and "https://" not in html and "<link" not in html
        rendered = open_page(page)
        assert rendered.console == [] and rendered.attribute("data-script") == "ran"
        assert rendered.attribute("data-images") == "1/1"
        groups = rendered.table("groups")
        assert [(row[0], row[1]) for row in groups] == [(str(g["rank"]), g["group"]) for g in comparison["groups"]]
        jobs = rendered.table("jobs")
        assert sorted(row[0] for row in jobs) == sorted(j["dir"] for g in comparison["groups"] for j in g["jobs"])
        for row in jobs:
            assert f'<a href="{row[0]}/report.html">' in html and RunDir(sweep / row[0]).report.is_file()
        by_name = open_page(page, "#sort=group:desc").table("groups")
        assert [row[1] for row in by_name] == sorted((g["group"] for g in comparison["groups"]), reverse=True)
    except AssertionError as err:
        raise AssertionError(f"{err}\n(screenshot of the page: {keep_screenshot(page, 'comparison')})") from None


def make_job(root: Path, name: str, strategy: str, seed: int, scores: list, test: float | None) -> None:
    job = root / name
    write_run_config(
        job, f"seed: {seed}\nstrategy: {{name: {strategy}}}\nsearch_space: {{name: toy}}\nbudget: {{trials: {len(scores)}}}\n")
    lines = [json.dumps({"id": i, "arch": [i], "metrics": {} if s is None else {"val_accuracy": s},
                         "status": "failed" if s is None else "ok"}) for i, s in enumerate(scores)]
    RunDir(job).trials.write_text("\n".join(lines) + "\n")
    ok = [s for s in scores if s is not None]
    summary = {"strategy": strategy, "seed": seed, "best_val_accuracy": max(ok) if ok else None,
               "test": {"test_accuracy": test} if test is not None else {}}
    RunDir(job).summary.write_text(json.dumps(summary))


def test_compare_ranks_by_mean_and_falls_back_to_validation(tmp_path):
    make_job(tmp_path, "0", "a", 0, [0.1, 0.5, 0.3], test=0.4)
    make_job(tmp_path, "1", "a", 1, [0.2, None, 0.6], test=0.6)
    make_job(tmp_path, "2", "b", 0, [0.7, 0.9, 0.8], test=None)   # no final test: best validation score
    comparison = compare(tmp_path, plot=False)
    first, second = comparison["groups"]
    assert (first["group"], first["rank"], first["mean"], first["metric"]) == ("b", 1, 0.9, ["best_val_accuracy"])
    assert (second["group"], second["rank"], second["mean"]) == ("a", 2, pytest.approx(0.5))
    assert second["std"] == pytest.approx(statistics.stdev([0.4, 0.6]))


def test_groups_split_by_settings_that_vary(tmp_path):
    make_job(tmp_path, "0", "a", 0, [0.1, 0.2], test=0.3)
    make_job(tmp_path, "1", "a", 0, [0.1, 0.2, 0.3], test=0.5)
    groups = [g["group"] for g in compare(tmp_path, plot=False)["groups"]]
    assert groups == ["a [budget.trials=3]", "a [budget.trials=2]"]


def test_best_so_far_curve_and_band(tmp_path):
    make_job(tmp_path, "0", "a", 0, [None, 0.5, 0.3, 0.7], test=None)
    assert best_so_far(RunDir(tmp_path / "0").trials) == [0.5, 0.5, 0.7]
    means, stds = anytime_band([[0.2, 0.4], [0.4, 0.6, 0.8]])
    assert means == pytest.approx([0.3, 0.5, 0.6]) and stds == pytest.approx([0.1, 0.1, 0.2])


def make_sweep(root: Path, results: dict[str, list[float]]) -> None:
    """One job per strategy and seed, with the given final test accuracies."""
    for strategy, values in results.items():
        for seed, value in enumerate(values):
            make_job(root, f"{strategy}-{seed}", strategy, seed, [value - 0.1, value], test=value)


def test_equal_means_share_a_rank_and_each_mean_has_a_t_interval(tmp_path):
    make_sweep(tmp_path, {"a": [0.5, 0.6, 0.7], "b": [0.7, 0.5, 0.6], "c": [0.3, 0.35, 0.4]})
    comparison = compare(tmp_path, plot=False)
    assert [(g["group"], g["rank"]) for g in comparison["groups"]] in ([("a", 1), ("b", 1), ("c", 3)],
                                                                       [("b", 1), ("a", 1), ("c", 3)])
    low, high = stats.t.interval(0.95, 2, loc=0.6, scale=stats.sem([0.5, 0.6, 0.7]))
    assert comparison["groups"][0]["ci95"] == pytest.approx([low, high])
    assert sorted(comparison["groups"][0]["values"]) == [0.5, 0.6, 0.7]
    pairs = {(p["a"], p["b"]): p for p in comparison["pairs"]}
    assert len(pairs) == 3 and pairs[("a", "b")]["identical"] and pairs[("a", "b")]["p"] == 1.0
    assert pairs[("a", "c")]["p"] == pytest.approx(0.1) and pairs[("a", "c")]["smallest_possible_p"] == pytest.approx(0.1)
    assert all(p["verdict"] == "indistinguishable" and p["better"] is None for p in pairs.values())
    assert comparison["test"]["name"].startswith("Mann-Whitney U")
    assert json.loads(RunDir(tmp_path).comparison.read_text())["pairs"] == comparison["pairs"]


def test_compare_says_which_is_better_when_the_seeds_show_it(tmp_path):
    make_sweep(tmp_path, {"slow": [0.50, 0.52, 0.51, 0.53, 0.49, 0.50], "fast": [0.60, 0.62, 0.61, 0.63, 0.64, 0.60]})
    result = run_cli([str(tmp_path), "--no-plot"], cwd=tmp_path, command="nasrun-compare")
    assert result.returncode == 0, result.stderr
    assert "fast better than slow at n=6 seeds (p=0.00" in result.stdout
    (pair,) = json.loads(RunDir(tmp_path).comparison.read_text())["pairs"]
    assert pair["better"] == "fast" and pair["p"] == pytest.approx(2 / math.comb(12, 6))
    assert "95% CI" in result.stdout


def test_few_seeds_are_called_indistinguishable_with_the_reason(tmp_path):
    make_sweep(tmp_path, {"a": [0.5, 0.51, 0.52], "b": [0.9, 0.91, 0.92]})
    result = run_cli([str(tmp_path), "--no-plot"], cwd=tmp_path, command="nasrun-compare")
    assert result.returncode == 0, result.stderr
    assert ("b and a: indistinguishable at n=3 seeds (p=0.1; n=3 seeds can never reach p<0.05, run more seeds)"
            in result.stdout)


@pytest.mark.parametrize("x, y", [([0.5, 0.6, 0.6], [0.6, 0.9, 1.0]), ([0.1, 0.2, 0.2, 0.3], [0.2, 0.2, 0.4]),
                                  ([0.7] * 3, [0.7] * 4), ([0.1, 0.5, 0.9, 0.3, 0.2], [0.4, 0.45, 0.8, 0.85, 0.95])])
def test_the_exact_rank_test_handles_ties_as_scipys_permutation_test_does(x, y):
    _, p, method = mann_whitney(x, y)
    expected = stats.mannwhitneyu(x, y, method=stats.PermutationMethod(n_resamples=10_000)).pvalue
    assert method == "exact" and p == pytest.approx(expected)


def test_compare_errors_are_one_line(tmp_path):
    result = run_cli([str(tmp_path)], cwd=tmp_path, command="nasrun-compare")
    assert result.returncode == 2 and "no job directories" in result.stderr and "Traceback" not in result.stderr
