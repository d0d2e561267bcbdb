"""scripts/gpu_check.py, the prepared CUDA check, runs its whole code path on the CPU (--cpu-smoke)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO


@pytest.mark.slow  # every GPU-check row on the CPU: `make test-slow`
def test_gpu_check_runs_every_row_on_the_cpu():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--cpu-smoke", "--steps", "1"],
                            cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if " search (" in line or "training (" in line]
    assert [row.split()[0] for row in rows] == ["darts1", "darts2", "pcdarts", "gdas", "DARTS_V2"]
    for row in rows:
        seconds, peak, hours = (float(v) for v in row.split()[5:8])
        assert seconds > 0 and peak > 0 and hours > 0
    assert "1.5 GPU-days" in rows[0] and "0.1 GPU-days" in rows[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_check_without_a_gpu_says_how_to_run_it():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py")], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "--cpu-smoke" in result.stderr
