"""nasrun-correlate: ranking agreement of two estimators (τ, ρ, top-k), checked against scipy, end to end."""

from __future__ import annotations

import json
import random

import pytest

from conftest import run_cli
from nasrun.reports.correlation import agreement, kendall_tau_b, spearman


def test_tau_and_rho_match_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    a = [rng.randint(0, 9) for _ in range(60)]
    b = [x + rng.randint(-4, 4) for x in a]
    assert kendall_tau_b(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_top_k_overlap_and_precision():
    a = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    b = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # reversed: A's best are B's worst
    result = agreement(a, b, ks=(5,), good_fraction=0.2)
    assert result["kendall_tau"] == pytest.approx(-1) and result["top_k"]["5"] == {"overlap": 0.0, "precision": 0.0}
    assert agreement(a, a, ks=(5,))["top_k"]["5"] == {"overlap": 1.0, "precision": 0.2}  # 1 of 5 is in the top 10%


def test_correlate_two_benchmark_columns_from_the_cli(tmp_path):
    args = ["search_space=nb201", "--a", "estimator=nb201 estimator.dataset=cifar100", "--b", "estimator=nb201",
            "--archs", "40", "--out", str(tmp_path / "out")]
    result = run_cli(args, tmp_path, command="nasrun-correlate")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "correlation.json").read_text())
    assert report["scored_by_both"] == 40 and len({json.dumps(r["arch"]) for r in report["architectures"]}) == 40
    assert 0.5 < report["kendall_tau"] < 1 and 0.5 < report["spearman_rho"] < 1  # related, not identical columns
    assert (tmp_path / "out" / "correlation.png").read_bytes()[:4] == b"\x89PNG"
    same = run_cli(["search_space=nb201", "estimator=nb201", "--archs", "10", "--out", str(tmp_path / "same")],
                   tmp_path, command="nasrun-correlate")
    assert same.returncode == 0
    assert json.loads((tmp_path / "same" / "correlation.json").read_text())["kendall_tau"] == pytest.approx(1.0)


@pytest.mark.parametrize("args, fragment", [
    (["--archs", "2"], "--archs"),
    (["search_space=nb201", "estimator=nb201", "--b", "search_space=macro estimator=full_training"], "nb201"),
    (["--a", "estimator=nope"], "nope"),
])
def test_correlate_refuses_bad_input_in_one_line(tmp_path, args, fragment):
    result = run_cli([*args, "--out", str(tmp_path / "out")], tmp_path, command="nasrun-correlate")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and fragment in output and "Traceback" not in output
    assert not (tmp_path / "out" / "correlation.json").exists()


def test_each_side_defaults_to_its_estimators_score(tmp_path):
    args = ["--a", "estimator=zero_cost estimator.proxy=synflow", "--archs", "4", "search_space=nb201", "scale=tiny",
            "--b", "estimator=nb201", "--out", str(tmp_path / "out")]  # overrides after flags too
    result = run_cli(args, tmp_path, command="nasrun-correlate")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "correlation.json").read_text())
    assert (report["a"]["metric"], report["b"]["metric"]) == ("zc_score", "val_accuracy")
    assert report["scored_by_both"] == 4


def test_a_metric_the_estimator_does_not_record_is_refused_before_any_data_is_loaded(tmp_path):
    # the dataset cannot be loaded: the metric check must come first to be the error reported
    args = ["search_space=nb201", "dataset=cifar10", f"dataset.root={tmp_path / 'no-data'}", "--archs", "4",
            "--a", "estimator=zero_cost estimator.proxy=[synflow,snip]", "--metric-a", "val_accuracy",
            "--b", "estimator=nb201", "--out", str(tmp_path / "out")]
    result = run_cli(args, tmp_path, command="nasrun-correlate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "nasrun-correlate: error: --metric-a val_accuracy: estimator zero_cost records ['zc_score', 'zc_synflow', "
        "'zc_snip'] (its score is zc_score, the default)"]
    assert not (tmp_path / "out").exists()
