"""`nasrun-reproduce RUN_DIR`: run a finished run again from its saved config alone.

The saved `.hydra/config.yaml` is the fully composed config (every group's values, not just its name),
so it needs nothing but the package. With `--check`, the new trials are compared with the old ones
(architectures, statuses and metrics; timings aside) and the exit code says whether they are identical.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nasrun.build import check_config
from nasrun.errors import NasrunError
from nasrun.progress import console, print_error
from nasrun.records import TrialLog
from nasrun.rundir import atomic_write

TIMING_KEYS = {"seconds", "worker"}
TIMING_METRICS = {"search_seconds", "latency_ms", "latency_ms_batch"}


def load_saved_config(run_dir: Path):
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise NasrunError(f"{path} not found: RUN_DIR must be a nasrun run directory")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:
        raise NasrunError(f"{path} is not a readable config: {str(err).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise NasrunError(f"{path} is not a nasrun run config (a mapping of config groups)")
    check_config(cfg)
    return cfg


def comparable(trial) -> dict:
    record = {k: v for k, v in trial.to_dict().items() if k not in TIMING_KEYS}
    record["metrics"] = {k: v for k, v in record["metrics"].items() if k not in TIMING_METRICS}
    return record


def compare_trials(original_dir: Path, new_dir: Path) -> list[str]:
    """Differences between two runs' trial records, as readable lines (empty when identical)."""
    old, new = TrialLog(original_dir / "trials.jsonl").read(), TrialLog(new_dir / "trials.jsonl").read()
    problems = [] if len(old) == len(new) else [f"{len(old)} trials originally, {len(new)} now"]
    for a, b in zip(old, new):
        if comparable(a) != comparable(b):
            problems.append(f"trial {a.id} differs: {json.dumps(comparable(a))[:200]} vs {json.dumps(comparable(b))[:200]}")
    return problems


def reproduce(run_dir: Path, out_dir: Path | None = None, overrides: list[str] = (), show_progress: bool = True) -> Path:
    from nasrun.experiment import run_experiment

    cfg = load_saved_config(run_dir)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    out_dir = out_dir or Path("outputs") / "reproduce" / f"{run_dir.name}_{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    handler = logging.FileHandler(out_dir / "nasrun.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    run_experiment(cfg, out_dir, show_progress=show_progress)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished nasrun run directory")
    parser.add_argument("overrides", nargs="*", help="optional key=value changes (e.g. hardware.device=cpu)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the new run (default outputs/reproduce/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the new trials equal the original ones")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        new_dir = reproduce(args.run_dir.resolve(), args.out, args.overrides, show_progress=not args.no_progress)
    except NasrunError as err:
        print_error("nasrun-reproduce", str(err))
        sys.exit(2)
    console.print(f"reproduced into {new_dir}")
    if args.check:
        problems = compare_trials(args.run_dir, new_dir)
        if problems:
            console.print("[bold red]trials differ:[/]\n" + "\n".join(problems), highlight=False)
            sys.exit(1)
        console.print("[green]identical trials[/]")


if __name__ == "__main__":
    main()
