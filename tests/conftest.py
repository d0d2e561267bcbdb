"""Shared fixtures: composing configs as the CLI does, and running the CLI in a subprocess."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# This process runs networks itself (in-process runs call Hardware.apply, which would take every core) beside
# another pytest-xdist worker: one torch thread, and idle OpenMP threads that sleep rather than spin. Both
# are read when torch loads. Left to the defaults, a worker's 2 spinning threads beside the other busy
# worker made in-process searches ~10x slower (the collapse nasrun.machine describes for a busy machine).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


sys.path.insert(0, str(REPO / "scripts"))
from cifar10_sample import sample_path  # noqa: E402  (where the real CIFAR-10 sample is; tests skip without it)
import child_limits  # noqa: E402

CIFAR10_SAMPLE = sample_path()

torch.set_num_threads(1)

# A tiny budget for end-to-end runs (conf/scale/tiny*: 2 trials of 1 epoch, the smallest networks of
# whatever options follow), no progress bars, no end-of-run plots (the default-run test and
# tests/test_reports.py draw them), no Optuna study (tests/test_trackers.py checks those).
TINY = ["scale=tiny", "progress=false", "report=false", "tracker=none"]
# The images scale=tiny keeps of the default dataset (conf/scale/dataset/tiny_digits.yaml), for runs and
# tests that choose their own sizes instead of scale=tiny: Digits(**DIGITS_SUBSETS), or SMALL_DIGITS overrides.
DIGITS_SUBSETS = {"train_subset": 256, "eval_subset": 128}
SMALL_DIGITS = [f"dataset.{key}={value}" for key, value in DIGITS_SUBSETS.items()]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(overrides=()):
    """The config `nasrun` would run with for `overrides` (module-scoped fixtures call this directly)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="nasrun.conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


@pytest.fixture
def compose_cfg():
    """compose(overrides) -> the config `nasrun` would run with."""
    return compose_config


# Variables read when the interpreter or a native library starts: a run that sets one gets a process
# of its own instead of a child of the fork server.
STARTUP_VARIABLES = ("OMP_", "MKL_", "ONEDNN_", "DNNL_", "MALLOC_", "LD_", "PYTHON", "KMP_", "OPENBLAS_")


def run_cli(args, cwd, command="nasrun", env=None, timeout=600, fresh=False,
            limits: dict | None = None, missing: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run an installed console script (from this interpreter's venv) in a process of its own.

    By default the process is forked from `cli_zygote` (the imports done once per test worker);
    `fresh=True`, or an `env` that sets a start-up variable, starts the console script itself.
    `limits` (tests/child_limits.py) bound its CPU time, memory and file sizes, or make folders read-only.
    `missing` packages cannot be imported in that process, as where they are not installed."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    environment.pop("HYDRA_FULL_ERROR", None)
    startup = {key: value for key, value in (env or {}).items() if key.startswith(STARTUP_VARIABLES)}
    if fresh or startup not in ({}, {"OMP_NUM_THREADS": "1"}):  # the fork server runs with exactly that
        if missing:
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, [hiding(missing), environment.get("PYTHONPATH")]))
        executable = str(Path(sys.executable).with_name(command))
        return subprocess.run([executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=(lambda: child_limits.apply(limits)) if limits else None)
    zygote = CliZygote.get()
    if not zygote.fork_works:  # this machine's torch does not survive a fork: start the script itself
        return run_cli(args, cwd, command, env, timeout, fresh=True, limits=limits, missing=missing)
    return zygote.run(command, [str(a) for a in args], cwd, environment, timeout, limits, missing)


def hiding(packages) -> str:
    """A folder with a sitecustomize.py that makes `packages` unimportable (for a fresh interpreter)."""
    folder = Path(tempfile.mkdtemp(prefix="nasrun-missing-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({list(packages)!r}))\n")
    return str(folder)


class CliZygote:
    """This test worker's fork server (tests/cli_zygote.py), started on first use."""

    _instance: "CliZygote | None" = None

    @classmethod
    def get(cls) -> "CliZygote":
        if cls._instance is None or cls._instance.process.poll() is not None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_zygote.py"))],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment,
                                        cwd=REPO)
        ready = json.loads(self.process.stdout.readline())
        assert "nasrun" in ready["ready"], ready
        self.fork_works = bool(ready["fork_works"])
        self.outputs = Path(tempfile.mkdtemp(prefix="nasrun-cli-"))
        self.count = 0
        atexit.register(self.close)

    def close(self) -> None:
        self.process.stdin.close()  # the server's loop ends at end of input
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.outputs, ignore_errors=True)

    def run(self, command, args, cwd, environment, timeout, limits=None, missing=()) -> subprocess.CompletedProcess:
        self.count += 1
        out, err = self.outputs / f"{self.count}.out", self.outputs / f"{self.count}.err"
        request = dict(command=command, args=args, cwd=str(cwd), env=environment, stdout=str(out),
                       stderr=str(err), timeout=timeout, limits=limits, missing=list(missing))
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
        out.unlink(), err.unlink()
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired([command, *args], timeout, stdout, stderr)
        return subprocess.CompletedProcess([command, *args], reply["returncode"], stdout, stderr)


def run_dirs(root: Path) -> list[Path]:
    """Run directories under root/outputs (those with a summary.json), oldest first."""
    return sorted(p.parent for p in (root / "outputs").rglob("summary.json"))


def write_run_config(run_dir: Path, cfg) -> Path:
    """A run directory holding only its saved config (`cfg`: a DictConfig or YAML text), where the run
    commands look for it; returns run_dir."""
    from omegaconf import OmegaConf

    from nasrun.rundir import RunDir

    path = RunDir(run_dir).config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg if isinstance(cfg, str) else OmegaConf.to_yaml(cfg))
    return run_dir


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
