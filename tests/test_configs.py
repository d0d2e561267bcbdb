"""Every YAML of every config group composes and runs end to end on a tiny budget."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, group_options
from fake_data import write_cifar10, write_cifar100, write_image_folder, write_mnist
from nasrun.build import GROUPS
from nasrun.errors import ConfigError
from nasrun.experiment import run_experiment
from nasrun.rundir import RunDir

DATA_WRITERS = {
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "mnist": write_mnist,
    "fashion_mnist": lambda root: write_mnist(root, "FashionMNIST"),
    "imagefolder": lambda root: write_image_folder(root / "images"),
}

# What an option needs besides `scale=tiny` (conftest.TINY), for reasons other than size: the test's
# CIFAR files are not the official release, and the tabular benchmark only knows the NB201 space.
NEEDS = {
    "dataset=cifar10": ["dataset.verify=false"],
    "dataset=cifar100": ["dataset.verify=false"],
    "estimator=nb201": ["search_space=nb201"],
}

CASES = [(group, option) for group in GROUPS for option in group_options(group)]
SLOW = {("executor", "ray"): "starts Ray", ("executor", "processes"): "spawns workers"}  # `make test-slow`   # the option's engine costs more than its run
PARAMS = [pytest.param(group, option, id=f"{group}={option}", marks=[pytest.mark.slow] if (group, option) in SLOW else [])
          for group, option in CASES]


def overrides_for(group: str, option: str) -> list[str]:
    return [f"{group}={option}", *TINY, *NEEDS.get(f"{group}={option}", [])]


@pytest.mark.parametrize("group, option", PARAMS)
def test_every_config_option_composes_and_runs(compose_cfg, tmp_path, monkeypatch, group, option):
    monkeypatch.setenv("NASRUN_DATA_DIR", str(tmp_path / "data"))
    if group == "dataset" and option in DATA_WRITERS:
        DATA_WRITERS[option](tmp_path / "data")
    cfg = compose_cfg(overrides_for(group, option))
    if group == "hardware" and option == "cuda" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            run_experiment(cfg, tmp_path / "run", show_progress=False)
        return
    summary = run_experiment(cfg, tmp_path / "run", show_progress=False)
    assert summary["trials"] >= 1 and summary["best_trial"] is not None
    assert RunDir(tmp_path / "run").trials.exists()
    best = json.loads(RunDir(tmp_path / "run").best.read_text())
    assert best["space"] == cfg.search_space.name


def test_every_group_has_its_default_and_a_name(compose_cfg):
    cfg = compose_cfg()
    for group in GROUPS:
        assert cfg[group]["_target_"].startswith("nasrun.")
    for group in ("search_space", "strategy", "estimator", "dataset"):
        for option in group_options(group):
            assert compose_cfg([f"{group}={option}"])[group]["name"] == option


def test_no_packaged_config_sets_hydra_mode():
    """`nasrun` skips Hydra's composition that only reads hydra.mode (nasrun/commands/search.py): valid while
    no config of the package can set it."""
    from omegaconf import OmegaConf

    from conftest import CONF

    for path in CONF.rglob("*.yaml"):
        data = OmegaConf.to_container(OmegaConf.load(path)) or {}
        assert "mode" not in (data.get("hydra") or {}), f"{path} sets hydra.mode"


@pytest.mark.parametrize("overrides, argv, composes", [
    (["seed=0", "strategy=tpe"], [], False),
    (["hydra.mode=MULTIRUN"], [], True),
    (["hydra/launcher=joblib"], [], True),
    (["+hydra.searchpath=[file:///x]"], [], True),
    (["seed=0"], ["--config-dir=/x", "seed=0"], True),
    (["seed=0"], ["-cd", "/x", "seed=0"], True),
])
def test_hydra_mode_is_composed_only_where_the_command_line_can_set_it(overrides, argv, composes):
    from nasrun.commands.search import mode_needs_composing

    assert mode_needs_composing(overrides, argv) is composes
