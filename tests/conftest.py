"""Shared fixtures: composing configs as the CLI does, and running the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

torch.set_num_threads(1)

# A tiny budget for end-to-end runs: 2 trials of 1 epoch on a shallow space.
TINY = ["budget.trials=2", "estimator.epochs=1", "search_space.min_layers=2", "search_space.max_layers=3",
        "progress=false"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def compose_cfg():
    """compose(overrides) -> the config `nasrun` would run with."""

    def _compose(overrides=()):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="nasrun.conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(args, cwd, command="nasrun", env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run an installed console script (from this interpreter's venv) in a subprocess."""
    executable = str(Path(sys.executable).with_name(command))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    environment.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def run_dirs(root: Path) -> list[Path]:
    """Run directories under root/outputs (those with a summary.json), oldest first."""
    return sorted(p.parent for p in (root / "outputs").rglob("summary.json"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
