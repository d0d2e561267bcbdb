"""What the machine lends this process: the cores it may use and how many torch threads it takes, how its
idle OpenMP threads wait, and how much memory is free (for `strategy.checkpoint=auto`).

Beside other CPU-bound processes a default run used to be ~9x slower than on a quiet machine (2 cores,
two busy processes: 177 s against 20 s). Three causes:

- The wait policy. torch's OpenMP runtime (GNU libgomp in the Linux wheels; MKL and oneDNN run on it)
  keeps a thread that finished its share of a parallel region spinning for up to GOMP_SPINCOUNT=300,000
  iterations. On a shared core the spinning thread burns the time slice its partner needs to finish the
  region, so each of the thousands of small ops per second waits for the scheduler. Sleeping at once
  (OMP_WAIT_POLICY=PASSIVE, nasrun's first fix) cures that but pays a wake-up per region on a quiet
  machine: 1.6-1.8x the quiet time of the default run on one 2-core VM, 1.1x on another. A short spin
  (SPIN_COUNT iterations, microseconds) catches the next region on a quiet machine as the long spin does
  and wastes little when the core is shared (scripts/bench_contention.py measures all three in one run).
  The runtime reads it once, when torch loads it, so `prepare_openmp` sets it in the environment before
  anything imports torch (every `nasrun*` command calls it first; worker processes inherit it, Ray
  workers get it through their runtime env). A policy the user set (OMP_WAIT_POLICY, GOMP_SPINCOUNT,
  KMP_BLOCKTIME) is left alone.
- The thread count. torch starts one thread per CPU of the process's affinity mask; a cgroup CPU quota
  (containers, CI runners) and the other workers of `executor=processes` sharing the same cores are not
  counted. `choose_threads` divides the cores the process may really use among the workers.
- The size of the work. On small images (fewer than SMALL_IMAGE_PIXELS, e.g. 8x8 digits) every op is a
  parallel region of microseconds, and a region ends only when every thread has done its share: beside
  other busy processes one of them is waiting for a core most of the time. A training step of a macro
  network on 8x8 images, batch 64, 2 cores: 2 threads 1.1-1.4x faster than 1 on a quiet machine, but
  3-6x slower beside two busy processes (4.3-6.8 ms against 5.8-10.0 quiet; 15-69 ms against 8-16 busy).
  From 16x16 up the second thread pays (28x28: 1.85x quiet, as fast as one thread when busy), so such runs
  keep every core. `hardware.threads` overrides it.

The count follows from the machine's shape (affinity, quota, workers) and the images, never from the
machine's load of the moment: the number of threads decides how float sums are split (a conv's weight
gradient over the batch), so a load-dependent count would make one seed give different trials on a quiet
and on a busy machine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")  # libgomp's and Intel's libiomp's
SPIN_COUNT = 3000  # libgomp spin iterations before an idle thread sleeps (its default: 300,000)
SHORT_SPIN = {"GOMP_SPINCOUNT": str(SPIN_COUNT), "KMP_BLOCKTIME": "0"}  # KMP_: Intel's runtime, where used
CGROUP_ROOT = Path("/sys/fs/cgroup")
SMALL_IMAGE_PIXELS = 256  # images with fewer pixels (below 16x16) train on one thread (module doc)

_wait_set_by: str | None = None  # how this process's OpenMP wait policy was decided (`prepare_openmp`)


@dataclass(frozen=True)
class ThreadChoice:
    """The torch threads of one process and why; what summary.json records under `cpu_threads`."""

    threads: int
    why: str
    openmp_wait: str

    def record(self) -> dict:
        return asdict(self)


def prepare_openmp(environ: dict | None = None) -> None:
    """Idle OpenMP threads spin only briefly, then sleep (SHORT_SPIN), unless the user set a wait policy.
    Only effective before torch is imported: OpenMP reads it once, when it is loaded."""
    global _wait_set_by
    environ = os.environ if environ is None else environ
    chosen = [f"{name}={environ[name]}" for name in WAIT_VARIABLES if name in environ]
    if chosen:
        _wait_set_by = _wait_set_by or f"{', '.join(chosen)} from the environment"
    elif "torch" in sys.modules:
        _wait_set_by = "the OpenMP default (torch was loaded before nasrun could set OMP_WAIT_POLICY)"
    else:
        environ.update(SHORT_SPIN)
        _wait_set_by = f"GOMP_SPINCOUNT={SPIN_COUNT}, set by nasrun: idle threads spin briefly, then sleep"


def openmp_wait() -> str:
    """How idle OpenMP threads of this process wait, and who decided it."""
    if _wait_set_by is not None:
        return _wait_set_by
    chosen = [f"{name}={os.environ[name]}" for name in WAIT_VARIABLES if name in os.environ]
    return f"{', '.join(chosen)} from the environment" if chosen else "the OpenMP default (spin, then sleep)"


def choose_threads(requested: int | None = None, workers: int = 1, input_shape=None) -> ThreadChoice:
    """The torch threads of one of `workers` processes sharing this machine's usable cores:
    `requested` (hardware.threads) when set, else OMP_NUM_THREADS when set, else 1 for images of
    `input_shape` (C, H, W) smaller than SMALL_IMAGE_PIXELS, else usable cores // workers."""
    if requested is not None:
        return ThreadChoice(int(requested), f"hardware.threads={int(requested)}", openmp_wait())
    from_environment = omp_num_threads()
    if from_environment is not None:
        return ThreadChoice(from_environment, f"OMP_NUM_THREADS={from_environment}", openmp_wait())
    cores, where = usable_cores()
    share = max(1, cores // max(1, int(workers)))
    why = f"{cores} usable cores ({where})" + (f" shared by {workers} worker processes" if workers > 1 else "")
    if share > 1 and small_images(input_shape):
        height, width = input_shape[-2:]
        return ThreadChoice(1, f"{height}x{width} images: ops too small to pay for the synchronisation of more "
                               f"threads, which stalls on a busy machine ({why})", openmp_wait())
    return ThreadChoice(share, why, openmp_wait())


def small_images(input_shape) -> bool:
    """Whether images of `input_shape` (..., H, W) have fewer than SMALL_IMAGE_PIXELS pixels."""
    if input_shape is None or len(input_shape) < 2:
        return False
    height, width = (int(size) for size in input_shape[-2:])
    return height * width < SMALL_IMAGE_PIXELS


def omp_num_threads() -> int | None:
    """OMP_NUM_THREADS (its first level) when set to a positive integer."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return None
    return value if value > 0 else None


def usable_cores() -> tuple[int, str]:
    """How many cores this process may run on (its CPU affinity, capped by a cgroup CPU quota, whole
    cores), and where that number comes from."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    if quota is not None and quota < affinity:
        return max(1, int(quota)), f"cgroup CPU quota of {quota:g} CPUs, {affinity} in the affinity mask"
    return affinity, "CPU affinity mask" + (f"; cgroup quota {quota:g} CPUs" if quota is not None else "")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, membership: str | None = None) -> float | None:
    """The CPUs per period that this process's cgroup, or one above it, may use (cgroup v2 `cpu.max`, v1
    `cpu.cfs_quota_us / cpu.cfs_period_us`); None without a quota. `membership`: /proc/self/cgroup's text."""
    quotas = [quota for version, folder in cgroup_folders("cpu", root, membership)
              if (quota := (v2_quota if version == 2 else v1_quota)(folder)) is not None]
    return min(quotas) if quotas else None


def free_memory(root: Path = CGROUP_ROOT, membership: str | None = None) -> tuple[int, str]:
    """Bytes this process could still allocate: the kernel's MemAvailable, or less where a cgroup memory
    limit (v2 `memory.max - memory.current`, v1 `memory.limit_in_bytes - memory.usage_in_bytes`) leaves
    less; and where the figure comes from."""
    meminfo = read_text(Path("/proc/meminfo")) or ""
    available = next((int(line.split()[1]) * 1024 for line in meminfo.splitlines()
                      if line.startswith("MemAvailable:")), None)
    limits = [left for version, folder in cgroup_folders("memory", root, membership)
              if (left := cgroup_memory_left(version, folder)) is not None]
    if limits and (available is None or min(limits) < available):
        return max(0, min(limits)), "the cgroup memory limit"
    if available is None:
        return 0, "nothing: /proc/meminfo is not readable here"
    return available, "MemAvailable"


def cgroup_folders(controller: str, root: Path = CGROUP_ROOT, membership: str | None = None) -> list[tuple[int, Path]]:
    """(cgroup version, folder) of this process's cgroup and of every one above it, for `controller`
    (cgroup v2: the unified tree; v1: the controller's own mount)."""
    if membership is None:
        membership = read_text(Path("/proc/self/cgroup")) or ""
    folders = []
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            folders += [(2, folder) for mount in (root, root / "unified") for folder in with_ancestors(mount, path)]
        elif controller in controllers.split(","):
            folders += [(1, folder) for mount in (root / controllers, root / controller)
                        for folder in with_ancestors(mount, path)]
    return list(dict.fromkeys(folders))


def with_ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup folder `path` under `mount` and every folder above it up to `mount`; just `mount` when
    `path` is not there (a container that sees its own cgroup at the mount's root)."""
    folder = mount / path.strip("/")
    if not folder.is_dir():
        return [mount] if mount.is_dir() else []
    return [folder, *[parent for parent in folder.parents if parent == mount or mount in parent.parents]]


def v2_quota(folder: Path) -> float | None:
    fields = (read_text(folder / "cpu.max") or "").split()
    if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit() or int(fields[1]) == 0:
        return None  # "max 100000": no quota
    return int(fields[0]) / int(fields[1])


def v1_quota(folder: Path) -> float | None:
    quota, period = read_text(folder / "cpu.cfs_quota_us"), read_text(folder / "cpu.cfs_period_us")
    if not quota or not period or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None  # -1: no quota
    return int(quota) / int(period)


def cgroup_memory_left(version: int, folder: Path) -> int | None:
    """The cgroup's memory limit minus its usage; None without a limit."""
    names = ("memory.max", "memory.current") if version == 2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
    limit, usage = (read_text(folder / name) for name in names)
    if not limit or not usage or not limit.isdigit() or not usage.isdigit() or int(limit) >= 2**60:
        return None  # "max" (v2) or a huge number (v1): no limit
    return int(limit) - int(usage)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None
