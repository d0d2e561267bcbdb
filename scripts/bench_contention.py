"""nasrun on a busy machine: the default `nasrun` run (and optionally the cached image-folder epoch)
quiet and beside N CPU-bound processes that this script starts, with nasrun's thread settings and with
the old ones, all in one invocation. Goals: default run busy <= 2.5x its quiet time; image-folder epoch
busy >= 1/3 of its quiet images/s.

  nasrun             what `nasrun` does now (nasrun/machine.py): idle OpenMP threads spin briefly, then
                     sleep (GOMP_SPINCOUNT=3000); threads = the cores the process may use, but one for
                     images smaller than 16x16 (the default dataset's are 8x8)
  cores              nasrun's earlier thread count: the same short spin, one thread per usable core
                     whatever the images (`hardware.threads=<that count>`)
  old                what torch does by default: GOMP_SPINCOUNT=300000 (libgomp's default spin before a
                     thread sleeps; setting it keeps nasrun's policy out) and one thread per CPU of the
                     affinity mask (`hardware.threads=<that count>`)

    python scripts/bench_contention.py                   # default run; 2 busy processes
    python scripts/bench_contention.py --busy 2 --imagefolder --repeats 2
    python scripts/bench_contention.py --args scale=tiny  # a quick smoke run of the script itself

Each busy process is a pure-Python loop (`while True: pass`, nice 0), started before and stopped after
each busy measurement. Every measurement is a fresh process, so OpenMP reads the policy it is given.
The tables go to results/contention.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
from results_file import write_results  # noqa: E402

NASRUN = Path(sys.executable).with_name("nasrun")
SPIN_DEFAULT = "300000"  # libgomp's spin count when no wait policy is set


VARIANTS = ("nasrun", "cores", "old")


def variant_env(variant: str) -> dict:
    """The environment of one measurement: nasrun's wait policy (nasrun, cores) or torch's old default."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS")}
    if variant == "old":
        env["GOMP_SPINCOUNT"] = SPIN_DEFAULT
    return env


def old_thread_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def busy_processes(count: int):
    """`count` CPU-bound processes for the duration of the block."""
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)  # let them get going
        yield
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def run_seconds(variant: str, extra_args: list[str]) -> float:
    """Wall seconds of one `nasrun` run in a fresh process."""
    args = list(extra_args) + (["hardware.threads=" + str(old_thread_count())] if variant != "nasrun" else [])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = subprocess.run([str(NASRUN), f"hydra.run.dir={folder}/run", "progress=false", *args],
                                env=variant_env(variant), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"nasrun failed ({variant}):\n{result.stderr[-2000:]}")
        threads = json.loads((Path(folder) / "run" / "summary.json").read_text()).get("cpu_threads")
    print(f"    {variant:<6} {seconds:7.1f} s   threads: {threads and threads['threads']}", flush=True)
    return seconds


def epoch_rate(variant: str, root: Path, epochs: int) -> float:
    """Images/s of later cached image-folder epochs (crop + flip), measured in a fresh process."""
    result = subprocess.run([sys.executable, __file__, "--epoch-child", str(root), variant, str(epochs)],
                            env=variant_env(variant), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"image-folder child failed ({variant}):\n{result.stderr[-2000:]}")
    rate = float(result.stdout.strip().splitlines()[-1])
    print(f"    {variant:<6} {rate:10,.0f} images/s", flush=True)
    return rate


def epoch_child(root: str, variant: str, epochs: int) -> None:
    """In the child: torch loaded under `variant`'s settings, then time later epochs of the cached folder."""
    if variant != "old":
        from nasrun.machine import prepare_openmp

        prepare_openmp()
    import torch

    from nasrun.machine import choose_threads

    sys.path.insert(0, str(SCRIPTS))
    from bench_imagefolder import epoch_seconds, image_folder

    bundle = image_folder(Path(root), "memory", 0).load()
    torch.set_num_threads(choose_threads(input_shape=bundle.input_shape).threads if variant == "nasrun"
                          else old_thread_count())
    epoch_seconds(bundle, seed=0)
    seconds = statistics.median(epoch_seconds(bundle, seed) for seed in range(1, epochs + 1))
    print(len(bundle.train) / seconds)


def measure(label: str, busy: int, repeats: int, one) -> dict:
    """{variant: {quiet, busy}} of `one(variant)`, the median of `repeats`, quiet and busy interleaved."""
    results = {variant: {"quiet": [], "busy": []} for variant in VARIANTS}
    for _ in range(repeats):
        for state, count in (("quiet", 0), ("busy", busy)):
            print(f"  {label}, {state}" + (f" ({busy} busy processes)" if count else ""), flush=True)
            with busy_processes(count):
                for variant in results:
                    results[variant][state].append(one(variant))
    return {variant: {state: statistics.median(values) for state, values in states.items()}
            for variant, states in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the busy measurements")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--args", nargs="*", default=[], help="overrides of the nasrun run (default: none)")
    parser.add_argument("--imagefolder", action="store_true", help="also the cached image-folder epoch")
    parser.add_argument("--images", type=int, default=2000, help="image-folder training images")
    parser.add_argument("--epochs", type=int, default=5, help="image-folder epochs timed (median)")
    parser.add_argument("--epoch-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch_child:
        return epoch_child(args.epoch_child[0], args.epoch_child[1], int(args.epoch_child[2]))

    from nasrun.hardware import cpu_name

    print("command: python " + " ".join(sys.argv))
    print(f"CPU {cpu_name()}, {old_thread_count()} CPUs in the affinity mask; load average now "
          f"{os.getloadavg()[0]:.2f} (other load makes 'quiet' less quiet)")
    command = f"nasrun {' '.join(args.args)}".strip()
    runs = measure(command, args.busy, args.repeats, lambda variant: run_seconds(variant, args.args))
    print(f"\ndefault run, seconds (busy = beside {args.busy} CPU-bound processes):")
    for variant, t in runs.items():
        print(f"  {variant:<6} quiet {t['quiet']:7.1f}  busy {t['busy']:7.1f}  busy/quiet {t['busy'] / t['quiet']:5.2f}x")
    print(f"  goal busy/quiet <= 2.5x: {'met' if runs['nasrun']['busy'] <= 2.5 * runs['nasrun']['quiet'] else 'NOT met'}"
          f"; nasrun / old: quiet {runs['nasrun']['quiet'] / runs['old']['quiet']:.2f}x, "
          f"busy {runs['nasrun']['busy'] / runs['old']['busy']:.2f}x; nasrun / cores: quiet "
          f"{runs['nasrun']['quiet'] / runs['cores']['quiet']:.2f}x, "
          f"busy {runs['nasrun']['busy'] / runs['cores']['busy']:.2f}x")
    tables = [(f"`{command}` in seconds, median of {args.repeats}; busy = beside {args.busy} CPU-bound processes",
               ["settings", "quiet s", "busy s", "busy / quiet"],
               [[variant, f"{t['quiet']:.1f}", f"{t['busy']:.1f}", f"{t['busy'] / t['quiet']:.2f}x"]
                for variant, t in runs.items()])]
    if args.imagefolder:
        from bench_imagefolder import write_jpeg_folders

        with tempfile.TemporaryDirectory() as folder:
            write_jpeg_folders(Path(folder), args.images)
            rates = measure(f"image-folder epoch, {args.images} images", args.busy, args.repeats,
                            lambda variant: epoch_rate(variant, Path(folder), args.epochs))
        print("\ncached image-folder epoch (crop + flip), images/s:")
        for variant, r in rates.items():
            print(f"  {variant:<6} quiet {r['quiet']:10,.0f}  busy {r['busy']:10,.0f}  busy/quiet {r['busy'] / r['quiet']:5.2f}")
        print(f"  goal busy/quiet >= 0.33: {'met' if rates['nasrun']['busy'] >= rates['nasrun']['quiet'] / 3 else 'NOT met'}")
        tables.append((f"cached image-folder epoch (crop + flip) of {args.images} images, images/s",
                       ["settings", "quiet", "busy", "busy / quiet"],
                       [[variant, f"{r['quiet']:,.0f}", f"{r['busy']:,.0f}", f"{r['busy'] / r['quiet']:.2f}"]
                        for variant, r in rates.items()]))
    write_results("contention", "nasrun on a busy machine: nasrun's thread settings against torch's old defaults",
                  tables, "`nasrun`: idle OpenMP threads spin briefly, then sleep (GOMP_SPINCOUNT=3000), threads = "
                  "the cores the process may use, but one for images smaller than 16x16 (the default digits are "
                  "8x8); `cores`: nasrun's earlier count, the same spin and one thread per usable core whatever the "
                  "images; `old`: GOMP_SPINCOUNT=300000 and one thread per CPU of the affinity mask. Goals: default "
                  "run busy / quiet <= 2.5x; image-folder epoch busy / quiet >= 0.33. nasrun / cores quiet is what "
                  "one thread costs on a quiet machine. Every row prepares batches on one thread "
                  "(nasrun.datasets.base.one_thread).")


if __name__ == "__main__":
    main()
