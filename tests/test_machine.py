"""CPU threads: the cores a process may use (affinity, cgroup quota), the count each process takes, and
the OpenMP wait policy every `nasrun` command sets before torch loads."""

from __future__ import annotations

import json

import pytest

from nasrun import machine
from nasrun.machine import cgroup_cpu_quota, choose_threads, prepare_openmp
from nasrun.rundir import RunDir
from conftest import TINY, run_cli


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_quota_is_the_smallest_on_the_way_up(tmp_path):
    write(tmp_path / "cpu.max", "max 100000")
    write(tmp_path / "jobs" / "cpu.max", "150000 100000")
    write(tmp_path / "jobs" / "mine" / "cpu.max", "max 100000")
    assert cgroup_cpu_quota(tmp_path, "0::/jobs/mine") == 1.5
    assert cgroup_cpu_quota(tmp_path, "0::/") is None


def test_cgroup_v1_quota_and_a_container_that_sees_its_cgroup_at_the_root(tmp_path):
    cpu = tmp_path / "cpu,cpuacct"
    write(cpu / "cpu.cfs_quota_us", "200000")
    write(cpu / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_quota(tmp_path, "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n") == 2.0  # path not mounted here
    write(cpu / "cpu.cfs_quota_us", "-1")
    assert cgroup_cpu_quota(tmp_path, "2:cpu,cpuacct:/") is None


def test_thread_count_hardware_setting_then_omp_num_threads_then_usable_cores_per_worker(monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: (6, "a test's 6 cores"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert (choose_threads().threads, choose_threads(workers=4).threads) == (6, 1)
    assert "shared by 4 worker processes" in choose_threads(workers=4).why
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads().threads == 3 and choose_threads().why == "OMP_NUM_THREADS=3"
    assert choose_threads(5).threads == 5 and choose_threads(5).why == "hardware.threads=5"


def test_small_images_train_on_one_thread_unless_threads_are_set(monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: (6, "a test's 6 cores"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    digits, below, cifar = (1, 8, 8), (3, 15, 16), (3, 32, 32)
    choice = choose_threads(input_shape=digits)
    assert choice.threads == 1 and choice.why.startswith("8x8 images: ops too small") and "6 usable cores" in choice.why
    assert choose_threads(input_shape=below).threads == 1
    assert choose_threads(input_shape=(1, 16, 16)).threads == 6 and choose_threads(input_shape=cifar).threads == 6
    assert choose_threads(workers=3, input_shape=cifar).threads == 2
    assert choose_threads(4, input_shape=digits).threads == 4  # hardware.threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(input_shape=digits).threads == 3
    monkeypatch.setattr(machine, "usable_cores", lambda: (1, "one core"))
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert choose_threads(input_shape=digits).why == "1 usable cores (one core)"  # nothing to give up there


def test_a_wait_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setattr(machine, "_wait_set_by", None)
    environ = {"GOMP_SPINCOUNT": "1000"}
    prepare_openmp(environ)
    assert environ == {"GOMP_SPINCOUNT": "1000"} and "from the environment" in machine.openmp_wait()


@pytest.fixture
def no_wait_policy(monkeypatch):
    """An environment without a wait policy of its own (the runs below start from os.environ)."""
    for name in machine.WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_run_sets_a_short_spin_before_torch_loads_and_records_its_threads(tmp_path, no_wait_policy):
    """In a fresh `nasrun` process OpenMP starts with the wait policy nasrun set (libgomp prints what it
    read with OMP_DISPLAY_ENV): idle threads spin briefly, then sleep; summary.json says so."""
    result = run_cli([*TINY, "budget.trials=1", f"hydra.run.dir={tmp_path}/run"], tmp_path,
                     env={"OMP_DISPLAY_ENV": "VERBOSE", "OMP_NUM_THREADS": "2"}, fresh=True)
    assert result.returncode == 0, result.stderr
    assert f"GOMP_SPINCOUNT = '{machine.SPIN_COUNT}'" in result.stderr  # libgomp's report of what it runs with
    record = json.loads(RunDir(tmp_path / "run").summary.read_text())["cpu_threads"]
    assert record["threads"] == 2 and record["why"] == "OMP_NUM_THREADS=2"
    assert record["openmp_wait"].startswith(f"GOMP_SPINCOUNT={machine.SPIN_COUNT}, set by nasrun")
    assert "CPU threads: 2 (OMP_NUM_THREADS=2)" in RunDir(tmp_path / "run").log.read_text()


def test_a_default_digits_run_takes_one_thread_and_says_why(tmp_path):
    """With no thread setting (OMP_NUM_THREADS unset), the 8x8 digits train on one thread wherever more
    than one core is usable; summary.json and the log say why."""
    result = run_cli([*TINY, "budget.trials=1", f"hydra.run.dir={tmp_path}/run"], tmp_path,
                     env={"OMP_NUM_THREADS": ""})
    assert result.returncode == 0, result.stderr
    record = json.loads(RunDir(tmp_path / "run").summary.read_text())["cpu_threads"]
    cores, _ = machine.usable_cores()
    assert record["threads"] == 1
    assert record["why"].startswith("8x8 images: ops too small") == (cores > 1), record["why"]
    assert f"CPU threads: 1 ({record['why']})" in RunDir(tmp_path / "run").log.read_text()


@pytest.mark.slow  # two more fresh interpreters; the default above stays in `make test`
@pytest.mark.parametrize("policy", [{"GOMP_SPINCOUNT": "5000"}, {"OMP_WAIT_POLICY": "ACTIVE"}])
def test_a_run_keeps_the_users_wait_policy(tmp_path, no_wait_policy, policy):
    result = run_cli([*TINY, "budget.trials=1", f"hydra.run.dir={tmp_path}/run"], tmp_path,
                     env={"OMP_DISPLAY_ENV": "VERBOSE", **policy}, fresh=True)
    assert result.returncode == 0, result.stderr
    name, value = next(iter(policy.items()))
    assert f"{name} = '{value}'" in result.stderr
    record = json.loads(RunDir(tmp_path / "run").summary.read_text())["cpu_threads"]
    assert record["openmp_wait"] == f"{name}={value} from the environment"
