"""Start-up times of the `nasrun` command, each the median of `--repeats` fresh processes, beside what
the interpreter and `import torch` alone take in the same invocation (goals: --help and --cfg job
<= 1.5 s, a tabular NB201 run's first trial <= 3 s after the command starts).

  python -c pass / import torch    the interpreter alone; torch's import alone (what nasrun avoids)
  nasrun --help, nasrun --cfg job  whole commands
  tabular run, first trial         from the command's start to its first trial in nasrun.log:
                                   nasrun search_space=nb201 estimator=nb201 strategy=random budget.trials=20
  tabular run, whole               the same run to its end (final test, summary, plots)

    python scripts/bench_startup.py [--repeats 5]

The table goes to results/startup.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import write_results  # noqa: E402

NASRUN = str(Path(sys.executable).with_name("nasrun"))
TABULAR = ["search_space=nb201", "estimator=nb201", "strategy=random", "budget.trials=20", "progress=false"]


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def tabular_run() -> tuple[float, float]:
    """(seconds to the first trial in nasrun.log, seconds of the whole run) of one tabular run."""
    with tempfile.TemporaryDirectory() as folder:
        started = datetime.datetime.now()
        whole = seconds([NASRUN, *TABULAR, f"hydra.run.dir={folder}/run"])
        line = next(line for line in (Path(folder) / "run" / "nasrun.log").read_text().splitlines()
                    if "] - trial 0:" in line)
        logged = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    return (logged - started).total_seconds(), whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = {"python -c pass": [], "python -c 'import torch'": [], "nasrun --help": [], "nasrun --cfg job": [],
            "tabular run, first trial": [], "tabular run, whole": []}
    for _ in range(args.repeats):  # interleaved: a load that comes and goes hits every row alike
        rows["python -c pass"].append(seconds([sys.executable, "-c", "pass"]))
        rows["python -c 'import torch'"].append(seconds([sys.executable, "-c", "import torch"]))
        rows["nasrun --help"].append(seconds([NASRUN, "--help"]))
        rows["nasrun --cfg job"].append(seconds([NASRUN, "--cfg", "job"]))
        first, whole = tabular_run()
        rows["tabular run, first trial"].append(first)
        rows["tabular run, whole"].append(whole)
    print(f"median of {args.repeats} fresh processes each (python {sys.version.split()[0]})")
    for label, values in rows.items():
        print(f"  {label:<28} {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})")
    median = {label: statistics.median(values) for label, values in rows.items()}
    print(f"goals: --help {median['nasrun --help']:.2f} s and --cfg job {median['nasrun --cfg job']:.2f} s "
          f"(<= 1.5 s); tabular first trial {median['tabular run, first trial']:.2f} s (<= 3 s)")
    table = [[label, f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"]
             for label, values in rows.items()]
    write_results("startup", "Start-up of the nasrun command beside the interpreter and `import torch`",
                  [(f"median of {args.repeats} fresh processes each (python {sys.version.split()[0]})",
                    ["what", "median s", "min s", "max s"], table)],
                  "Goals: `--help` and `--cfg job` <= 1.5 s; a tabular run's first trial <= 3 s after the command "
                  f"starts (`{' '.join(TABULAR)}`).")


if __name__ == "__main__":
    main()
