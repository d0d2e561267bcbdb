"""Score every NAS-Bench-201 architecture with nasrun's zero-cost proxies on real CIFAR-10 images: the table
shipped as `nasrun/data/nb201_zc.csv.gz` (with `NB201_ZC_PROVENANCE.md` beside it), which the NB201
lookups read (`search_space=nb201 estimator=nb201`: proxy-guided search, warm starts; `estimator=zero_cost`
on NB201 with `estimator.table=true`).

What a row holds is exactly what this command computes for that architecture (and what the tests check
against a fresh computation for a few rows):

    nasrun search_space=nb201 estimator=zero_cost dataset=cifar10 dataset.root=R seed=0 estimator.init_seed=0 \\
        estimator.proxy=[synflow,jacob_cov,naswot,snip,grad_norm,fisher,params,flops]

with R the CIFAR-10 sample (`../shared/data/cifar10-sample`) written by `scripts/cifar10_sample.py R`: the
NB201 network at C=16, N=5 for 32x32 inputs and 10 classes, initialised from seed 0; the data proxies see
one batch of 64 training images (the first batch of the seed-0 shuffle of nasrun's CIFAR-10 training split).
A cell is `nan` where the proxy is undefined for the architecture (every data proxy of a network whose
output ignores its input) and empty where it is not computed yet. `params` and `flops` are sums of per-edge contributions measured once with the
same proxies (both are exactly additive over the cell's edges; checked on random architectures at start).

Resumable: first synflow for every row (~0.15 s each), then the data proxies (~1 s each, sharing their
passes); architectures in a fixed shuffled order, the table rewritten atomically every `--save-every` rows
and on SIGTERM/Ctrl-C, so a killed run continues where it stopped and a partial column is a uniform sample.

    nice -n 19 python scripts/nb201_zc_table.py                 # until all 15,625 rows are there
    python scripts/nb201_zc_table.py --limit 200 --workers 1    # 200 more rows, then stop
    python scripts/nb201_zc_table.py --status                   # rows done, seconds per row so far
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import os
import platform
import random
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from nasrun.estimators.nb201 import load_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cifar10_sample  # noqa: E402  (the CIFAR-10 sample in torchvision's layout)

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "nasrun" / "data" / "nb201_zc.csv.gz"
PROVENANCE = REPO / "nasrun" / "data" / "NB201_ZC_PROVENANCE.md"
SCORED = ["synflow", "jacob_cov", "naswot", "snip", "grad_norm", "fisher"]   # computed per architecture
ADDITIVE = ["params", "flops"]                                                # summed from per-edge parts
COLUMNS = ["index", *SCORED, *ADDITIVE]
ARCHITECTURES = 15_625
ORDER_SEED = 0


def overrides(root: Path, proxies: list[str]) -> list[str]:
    return ["search_space=nb201", "estimator=zero_cost", "dataset=cifar10", f"dataset.root={root}",
            "dataset.verify=false", "seed=0", "estimator.init_seed=0", "hardware=cpu", "hardware.threads=1",
            f"estimator.proxy=[{','.join(proxies)}]"]


def bound_estimator(root: Path, proxies: list[str]):
    """The zero_cost estimator of `overrides`, bound to the sample's data (what the CLI would run)."""
    from nasrun.build import build_components
    from nasrun.commands.common import compose_run_config

    cfg = compose_run_config(overrides(root, proxies))
    parts = build_components(cfg, ["hardware", "search_space", "dataset", "estimator"])
    parts.hardware.apply()
    parts.estimator.bind(parts.search_space, parts.dataset.load(), parts.hardware, None, seed=int(cfg.seed))
    return parts.estimator


_ESTIMATOR = None


def _worker_init(root: str) -> None:
    global _ESTIMATOR
    _ESTIMATOR = bound_estimator(Path(root), SCORED)


def _score(job: tuple[int, tuple[str, ...]]) -> dict:
    """One architecture's scores for the proxies `names` (one phase)."""
    index, names = job
    _ESTIMATOR.proxies = list(names)
    return {"index": index, **_ESTIMATOR.proxy_scores(load_table().archs[index])}


def additive_model(root: Path):
    """params / flops of any architecture as the all-`none` cell's plus each edge's op contribution."""
    from nasrun.nets.nb201 import NB201_OPS, format_arch

    estimator = bound_estimator(root, ADDITIVE)
    base_ops = ["none"] * 6
    base = estimator.proxy_scores(format_arch(base_ops))
    parts = {}
    for edge in range(6):
        for op in NB201_OPS[1:]:
            ops = list(base_ops)
            ops[edge] = op
            scores = estimator.proxy_scores(format_arch(ops))
            parts[edge, op] = {name: scores[name] - base[name] for name in ADDITIVE}

    def model(arch: str) -> dict[str, float]:
        from nasrun.nets.nb201 import parse_arch

        ops = parse_arch(arch)
        return {name: base[name] + sum(parts[e, op][name] for e, op in enumerate(ops) if op != "none")
                for name in ADDITIVE}

    rng = random.Random(1)
    for arch in rng.sample(load_table().archs, 5):  # the additivity is checked, not assumed
        if model(arch) != {name: estimator.proxy_scores(arch)[name] for name in ADDITIVE}:
            raise SystemExit(f"nb201_zc_table: params/flops are not additive over edges for {arch}")
    return model


def read_rows(path: Path = TABLE) -> dict[int, dict]:
    """index -> {column: cell} of every row written so far ("" = not computed yet, "nan" = undefined)."""
    if not path.is_file():
        return {}
    with gzip.open(path, "rt", newline="") as text:
        return {int(row["index"]): {name: row.get(name, "") for name in COLUMNS[1:]} for row in csv.DictReader(text)}


def cell(value) -> str:
    if isinstance(value, str):
        return value
    return "nan" if value is None or not math.isfinite(value) else f"{value:.10g}"


def write_rows(rows: dict[int, dict], path: Path = TABLE) -> None:
    """The table sorted by index, gzip'd deterministically (no timestamp), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for index in sorted(rows):
        writer.writerow([index, *(cell(rows[index].get(name, "")) for name in COLUMNS[1:])])
    data = gzip.compress(buffer.getvalue().encode(), compresslevel=9, mtime=0)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def done(rows: dict[int, dict], column: str) -> int:
    return sum(1 for row in rows.values() if row.get(column, "") != "")


def order() -> list[int]:
    indices = list(range(ARCHITECTURES))
    random.Random(ORDER_SEED).shuffle(indices)
    return indices


def write_provenance(rows: dict[int, dict]) -> None:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else "?"
    PROVENANCE.write_text(f"""# NAS-Bench-201 zero-cost table (`nb201_zc.csv.gz`)

Rows: {ARCHITECTURES:,} architectures (`index` = the benchmark index, as in `nb201_accuracy.csv.gz`).
Columns (nasrun's own proxies, `nasrun/estimators/proxies.py`), with how many rows each holds so far:
{chr(10).join(f"- {name}: {done(rows, name):,}" for name in COLUMNS[1:])}

A cell is a number, `nan` (the proxy is undefined for that architecture: every data proxy of a network
whose output ignores its input) or empty (not computed yet: the script is resumable and scores the cheap
synflow for every row before the data proxies; rows are taken in a fixed shuffled order, so the rows done
so far are a uniform sample).

Written by `python scripts/nb201_zc_table.py` (resumable; it rewrites this file). Each row is what
`nasrun {' '.join(overrides(Path('R'), SCORED + ADDITIVE))}` computes for the architecture, with R the
CIFAR-10 sample (5,000 real training images, `../shared/data/cifar10-sample`) in `cifar-10-batches-py`
form: NB201 network C=16, N=5, 32x32 inputs, 10 classes, initialised from seed 0; one batch of 64 real
CIFAR-10 training images for the data proxies.

CIFAR-100 and ImageNet16-120 images are not available here, so lookups for those datasets use these same
CIFAR-10 scores: synflow, params and flops are data-free apart from the input size and number of classes;
the data proxies are label-free (naswot, jacob_cov) or use CIFAR-10 labels (snip, grad_norm, fisher). A
lookup says so (`zc_source` in the trial).

Last written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {cpu} ({os.cpu_count()} cores), Python
{platform.python_version()}, torch {torch.__version__}, worker processes of one thread each.
""")


PHASES = (("synflow",), tuple(name for name in SCORED if name != "synflow"))  # cheap first: 0.15 s vs ~1 s


def run_phase(names: tuple[str, ...], rows: dict[int, dict], args, root: str) -> None:
    """Score every row still missing `names` (in the fixed shuffled order), saving as it goes."""
    todo = [index for index in order() if rows.get(index, {}).get(names[0], "") == ""][:args.limit]
    if not todo:
        return
    start, scored = time.perf_counter(), 0
    with ProcessPoolExecutor(args.workers, initializer=_worker_init, initargs=(root,)) as pool:
        try:
            for result in pool.map(_score, [(index, names) for index in todo], chunksize=4):
                rows.setdefault(result["index"], {}).update({name: result[name] for name in names})
                scored += 1
                if scored % args.save_every == 0 or scored == len(todo):
                    save(rows, names, (time.perf_counter() - start) / scored * args.workers)
        finally:
            if scored:
                save(rows, names, (time.perf_counter() - start) / scored * args.workers)


def save(rows: dict[int, dict], names: tuple[str, ...], per_row: float) -> None:
    write_rows(rows)
    write_provenance(rows)
    print(f"{', '.join(names)}: {done(rows, names[0]):,} / {ARCHITECTURES:,} rows; "
          f"{per_row:.2f} s per row per worker", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="processes, one thread each")
    parser.add_argument("--limit", type=int, default=None, help="score at most this many more rows per phase")
    parser.add_argument("--save-every", type=int, default=50, help="rows between atomic rewrites of the table")
    parser.add_argument("--status", action="store_true", help="print how many rows are done and stop")
    args = parser.parse_args(argv)
    rows = read_rows()
    if args.status:
        print(", ".join(f"{name} {done(rows, name):,}" for name in COLUMNS[1:]) + f" of {ARCHITECTURES:,} rows")
        return 0
    if not cifar10_sample.sample_path().is_file():
        print(f"nb201_zc_table: the CIFAR-10 sample is not at {cifar10_sample.sample_path()}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # save, then stop
    with tempfile.TemporaryDirectory() as root:
        cifar10_sample.write_cifar10_batches(Path(root))
        if done(rows, "flops") < ARCHITECTURES:
            additive = additive_model(Path(root))
            for index, arch in enumerate(load_table().archs):
                rows.setdefault(index, {}).update(additive(arch))
            write_rows(rows)
        try:
            for names in PHASES:
                run_phase(names, rows, args, root)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: run_phase saved what was scored
            print(f"nb201_zc_table: stopped; {done(rows, SCORED[-1]):,} rows have every proxy; run it again to go on",
                  file=sys.stderr)
            return 130
    print(f"all {ARCHITECTURES:,} rows of {', '.join(SCORED)} are in {TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
