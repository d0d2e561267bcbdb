"""The named recipes of conf/experiment/: each sets only keys that exist, says what it reproduces and on
what hardware, and runs end to end at scale=tiny."""

from __future__ import annotations

import json

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import CONF, TINY, group_options, run_cli, run_dirs
from fake_data import write_cifar10
from nasrun.rundir import RunDir

RECIPES = group_options("experiment")
ABSENT = object()


def recipe(name: str) -> dict:
    return yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())


def group_choices(name: str) -> list[str]:
    """The recipe's defaults list as command-line group choices (`override /strategy: darts` -> strategy=darts)."""
    choices = []
    for entry in recipe(name).get("defaults", []):
        ((key, value),) = entry.items()
        choices.append(f"{key.removeprefix('override ').lstrip('/')}={value}")
    return choices


def leaves(node, prefix: str = "") -> dict:
    """Dotted key -> value of every leaf the recipe sets (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    found = {}
    for key, value in node.items():
        if key != "defaults" or prefix:
            found.update(leaves(value, f"{prefix}.{key}" if prefix else key))
    return found


def test_there_is_a_recipe_per_published_result():
    assert set(RECIPES) >= {"darts_cifar10", "pcdarts_cifar10", "gdas_nb201", "rea_nb201", "spos_macro",
                            "naswot_nb201", "hyperband_cifar10"}


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_sets_only_keys_its_components_have(compose_cfg, name):
    without = compose_cfg(group_choices(name))
    unknown = [key for key in leaves(recipe(name)) if OmegaConf.select(without, key, default=ABSENT) is ABSENT]
    assert not unknown, f"{name} sets keys no component of it has: {unknown}"
    with_recipe = compose_cfg([f"experiment={name}"])
    for key, value in leaves(recipe(name)).items():
        assert OmegaConf.select(with_recipe, key) == value, key


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_header_names_its_figure_its_source_and_its_hardware(name):
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    header = text.split("defaults:")[0]
    assert text.startswith("# @package _global_\n")
    assert f"nasrun experiment={name}" in header
    assert "Published" in header and "Hardware:" in header


def test_tiny_scale_shrinks_a_recipe(compose_cfg):
    cfg = compose_cfg(["experiment=darts_cifar10", "scale=tiny"])
    assert cfg.strategy.epochs == 1 and cfg.search_space.layers == 3 and cfg.estimator.epochs == 1
    assert cfg.strategy.order == 2 and cfg.search_space.auxiliary  # what tiny does not shrink stays the recipe's


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_end_to_end_at_tiny_scale(tmp_path, name):
    needs_cifar = "dataset=cifar10" in group_choices(name)
    if needs_cifar:
        write_cifar10(tmp_path / "data")  # fake CIFAR files: not the official release, hence verify=false
    args = [f"experiment={name}", *TINY, *(["dataset.verify=false"] if needs_cifar else [])]
    result = run_cli(args, cwd=tmp_path, env={"NASRUN_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    chosen = dict(choice.split("=") for choice in group_choices(name))
    assert summary["strategy"] == chosen["strategy"]
    assert summary["best_trial"] is not None and summary["test"]


def test_plus_experiment_spelling_picks_the_recipe(tmp_path):
    result = run_cli(["+experiment=rea_nb201", "scale=tiny", "--cfg", "job"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = OmegaConf.create(result.stdout)
    assert cfg.strategy.name == "regularized_evolution" and cfg.strategy.population_size == 10
    assert cfg.budget.trials == 2  # scale=tiny still wins over the recipe's 100


def test_every_recipe_is_listed_in_the_recipes_page():
    page = (CONF.parent / "docs" / "recipes.md").read_text()
    assert [name for name in RECIPES if f"nasrun experiment={name}" not in page] == []
