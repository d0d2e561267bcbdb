"""The NAS-Bench-201 zero-cost table (nasrun/estimators/nb201_zc.py): its rows equal a fresh computation,
`estimator=zero_cost` looks them up (estimator.table), a score not computed yet is a one-line error, and
`search_space.partial_table` keeps every strategy inside the scored rows."""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import CIFAR10_SAMPLE, REPO, TINY, read_jsonl, run_cli
from nasrun.errors import ConfigError
from nasrun.estimators.nb201_zc import agrees, load_zc_table
from nasrun.rundir import RunDir

sys.path.insert(0, str(REPO / "scripts"))
import cifar10_sample  # noqa: E402  (the CIFAR-10 sample in torchvision's layout)
import nb201_zc_table  # noqa: E402  (the script that writes the table, and its estimator)

PARTIAL = ["search_space=nb201", "estimator=nb201", "search_space.partial_table=true", "progress=false", "report=false"]


@pytest.fixture(scope="module")
def sample_root():
    if not CIFAR10_SAMPLE.is_file():
        pytest.skip(f"{CIFAR10_SAMPLE} is not on this machine")
    with tempfile.TemporaryDirectory() as root:
        cifar10_sample.write_cifar10_batches(Path(root))
        yield Path(root)


def script_estimator(root: Path, monkeypatch, *extra: str):
    """scripts/nb201_zc_table.py's estimator (every proxy), with `extra` overrides."""
    overrides = nb201_zc_table.overrides
    monkeypatch.setattr(nb201_zc_table, "overrides", lambda *args: [*overrides(*args), *extra])
    return nb201_zc_table.bound_estimator(root, list(load_zc_table().proxies))


def test_the_table_equals_a_fresh_computation(sample_root, monkeypatch):
    table = load_zc_table()
    archs = table.archs()
    assert len(archs) >= 3, "the zero-cost table has fewer than 3 complete rows"
    fresh = script_estimator(sample_root, monkeypatch, "estimator.table=false")
    assert fresh.lookup is None
    for arch in random.Random(0).sample(archs, 3):
        looked_up = table.scores(arch)
        computed = fresh.proxy_scores(arch)
        assert agrees(looked_up, computed), (arch, looked_up, computed)
    assert fresh.counts == {"looked_up": 0, "computed": 3}


def test_auto_looks_up_only_where_a_fresh_computation_agrees(sample_root, monkeypatch):
    same = script_estimator(sample_root, monkeypatch)           # the table's data batch and init seed
    table = load_zc_table()
    arch = next(a for a in table.archs() if all(math.isfinite(v) for v in table.scores(a).values()))
    assert same.lookup is not None and same.proxy_scores(arch) == table.scores(arch)
    assert same.counts["looked_up"] == 1 and same.last_source == "table (CIFAR-10 images)"
    monkeypatch.undo()
    other = script_estimator(sample_root, monkeypatch, "estimator.init_seed=1")   # other initial weights
    assert other.lookup is None


def test_a_score_the_table_lacks_is_a_one_line_error_naming_the_script():
    from nasrun.estimators.nb201_zc import ZeroCostTable

    table = ZeroCostTable(("synflow", "naswot"), {3: (1.0, None), 7: (2.0, float("nan"))})
    assert table.scores(table.archs(["synflow"])[1], ["synflow"]) == {"synflow": 2.0}
    with pytest.raises(ConfigError, match=r"holds 1 of 15,625 .* by every proxy .*scripts/nb201_zc_table.py"):
        table.scores(table.archs(["synflow"])[0])


def test_the_nb201_space_restricted_to_scored_rows_stays_inside(tmp_path):
    from nasrun.spaces.nb201 import NB201Space

    scored = load_zc_table().archs()
    space = NB201Space()
    space.restrict(scored[:40])
    rng = random.Random(0)
    inside = set(space.allowed)
    for _ in range(30):
        arch = space.sample(rng)
        assert arch in inside and space.mutate(arch, rng) in inside
        assert set(space.neighbours(arch)) <= inside
    result = run_cli([*PARTIAL, "strategy=regularized_evolution", "budget.trials=15", "seed=2",
                      f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {t["arch"] for t in read_jsonl(RunDir(tmp_path / "run").trials)} <= set(scored)
    assert "partial table" in json.loads(RunDir(tmp_path / "run").summary.read_text())["partial_table"]


def test_zero_cost_estimator_looks_the_table_up(tmp_path):
    result = run_cli(["search_space=nb201", "estimator=zero_cost", "estimator.proxy=[params,flops]", "estimator.table=true",
                      "estimator@estimator.final=nb201", "budget.trials=4", "progress=false", "report=false",
                      f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    table = load_zc_table()
    for trial in read_jsonl(RunDir(tmp_path / "run").trials):
        assert trial["metrics"]["zc_source"] == "table (CIFAR-10 images)"
        assert trial["metrics"]["zc_params"] == table.scores(trial["arch"], ["params"])["params"]
    result = run_cli(["estimator=zero_cost", "estimator.table=true", *TINY], cwd=tmp_path)
    assert result.returncode == 2 and "estimator.table=true" in result.stderr and "Traceback" not in result.stderr


