"""Native code in the shapes nasrun makes: no heap corruption, on any x86 CPU.

oneDNN picks its kernels by the CPU's instruction sets, so a crash can pass on one machine and abort on the
next. These tests force the AVX2 kernels (`ONEDNN_MAX_CPU_ISA=AVX2`, where the known bug lives) and glibc's
heap checking (`MALLOC_CHECK_=3`: corruption aborts at once), and run in subprocesses so an abort fails the
test instead of killing pytest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from nasrun.nets.conv import conv2d, needs_workaround

pytestmark = pytest.mark.slow  # fresh interpreters under glibc heap checks: `make test-slow`

STRICT = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165"}

ONE_CONV = """
import torch, torch.nn.functional as F
from nasrun.nets.conv import conv2d

conv = {conv}
torch.manual_seed(0)
for c_in in range(2, 8):
    x = torch.randn(256, c_in, 8, 8).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(2, c_in, 1, 1, requires_grad=True)
    for _ in range(3):
        conv(x, w, None, 2).sum().backward()
print("clean")
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **STRICT, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="oneDNN is not in this torch build")
def test_the_strided_pointwise_weight_gradient_is_clean_through_nasrun_conv():
    result = run_python(ONE_CONV.format(conv="conv2d"))
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize("strategy", ["pcdarts", "darts", "gdas"])
def test_tiny_cell_searches_survive_avx2_kernels_with_heap_checking(tmp_path, strategy):
    """The configuration that aborted `make test` on AVX2 machines (PC-DARTS, C=8, k=4: 2-channel edges)."""
    result = run_cli([f"strategy={strategy}", "strategy.epochs=1", "strategy.C=8", "strategy.layers=3",
                      "strategy.steps_per_epoch=2", "search_space.C=4", "search_space.layers=3", "estimator.epochs=1",
                      "hardware.threads=1", "progress=false", "report=false"], tmp_path, env=STRICT)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("c_in, size", [(2, 8), (4, 6), (7, 10)])
def test_the_workaround_computes_what_conv2d_computes(channels_last, c_in, size):
    torch.manual_seed(0)
    x = torch.randn(3, c_in, size, size, dtype=torch.float64)
    x = (x.to(memory_format=torch.channels_last) if channels_last else x).requires_grad_()
    w = torch.randn(5, c_in, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert needs_workaround(x, w, 2, 0, 1)
    ours, reference = conv2d(x, w, b, 2), F.conv2d(x, w, b, 2)
    assert torch.allclose(ours, reference) and ours.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    grads = torch.autograd.grad(ours.square().sum(), (x, w, b))
    expected = torch.autograd.grad(reference.square().sum(), (x, w, b))
    assert all(torch.allclose(g, e) for g, e in zip(grads, expected))


def test_every_other_convolution_is_left_to_torch():
    x, w = torch.randn(1, 4, 8, 8), torch.randn(2, 4, 1, 1)
    assert not needs_workaround(x, w, 1, 0, 1)                               # stride 1
    assert not needs_workaround(torch.randn(1, 8, 8, 8), torch.randn(2, 8, 1, 1), 2, 0, 1)  # 8 channels
    assert not needs_workaround(x, torch.randn(2, 4, 3, 3), 2, 1, 1)         # 3x3
