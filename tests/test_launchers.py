"""Hydra launcher configs: a submitit sweep runs locally; the Slurm config takes its sizes from hardware."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import run_cli, run_dirs
from nasrun.rundir import RunDir

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="launchers extra: pip install 'nasrun[launchers]'")

TINY_SWEEP = ["budget.trials=1", "estimator.epochs=1", "search_space.min_layers=2", "search_space.max_layers=2",
              "progress=false", "final_test=false", "report=false"]


@pytest.mark.slow  # submitit jobs: `make test-slow`
def test_submitit_local_sweep_of_two_points_completes(tmp_path):
    result = run_cli(["-m", "hydra/launcher=slurm_local", "seed=0,1", *TINY_SWEEP], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = run_dirs(tmp_path)
    assert len(runs) == 2
    assert sorted(json.loads(RunDir(run).summary.read_text())["seed"] for run in runs) == [0, 1]
    submitit_logs = list((runs[0].parent / ".submitit").rglob("*_log.out"))
    assert len(submitit_logs) == 2  # each point ran as its own submitit job


@pytest.mark.parametrize("hardware, gpus", [("cpu", 0), ("cuda", 2)])
def test_slurm_launcher_asks_for_the_hardware_groups_resources(hardware, gpus):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="nasrun.conf", version_base="1.3"):
            cfg = compose(config_name="config", return_hydra_config=True,
                          overrides=["hydra/launcher=slurm", f"hardware={hardware}", "hardware.devices=2",
                                     "hardware.job.time_min=30"])
    finally:
        GlobalHydra.instance().clear()
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert OmegaConf.select(cfg, "hydra.launcher.gpus_per_node") == gpus
    assert OmegaConf.select(cfg, "hydra.launcher.timeout_min") == 30
    assert OmegaConf.select(cfg, "hydra.launcher.cpus_per_task") == cfg.hardware.job.cpus
