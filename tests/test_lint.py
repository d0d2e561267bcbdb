"""The code passes ruff with pyproject.toml's [tool.ruff] rules (pyflakes, syntax, pycodestyle's statement
rules): no unused import or variable, no undefined name, no syntax a Python release would refuse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("ruff", reason="the dev extra installs ruff")


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "nasrun", "tests", "scripts"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_ruff_reports_an_unused_import(tmp_path):
    """The configuration is the one the check above reads, and it catches what it is meant to."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                             str(REPO / "pyproject.toml"), str(bad)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "F401" in result.stdout
