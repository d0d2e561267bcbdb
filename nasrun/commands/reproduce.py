"""`nasrun-reproduce RUN_DIR`: run a finished run again from its saved config alone.

The saved `.hydra/config.yaml` is the fully composed config (every group's values, not just its name),
so it needs nothing but the package. With `--check`, the new trials are compared with the old ones
(architectures, statuses and metrics; timings aside) and the exit code says whether they are identical.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from nasrun.commands.common import run_command
from nasrun.config import load_saved_config
from nasrun.console import console, escape, say
from nasrun.experiment import run_experiment
from nasrun.rundir import RunDir

TIMING_KEYS = {"seconds", "worker"}
TIMING_METRICS = {"search_seconds", "latency_ms", "latency_ms_batch"}


def comparable(trial) -> dict:
    record = {k: v for k, v in trial.to_dict().items() if k not in TIMING_KEYS}
    record["metrics"] = {k: v for k, v in record["metrics"].items() if k not in TIMING_METRICS}
    return record


def compare_trials(original_dir: Path, new_dir: Path) -> list[str]:
    """Differences between two runs' trial records, as readable lines (empty when identical)."""
    old, new = RunDir(original_dir).read_trials(), RunDir(new_dir).read_trials()
    problems = [] if len(old) == len(new) else [f"{len(old)} trials originally, {len(new)} now"]
    for a, b in zip(old, new):
        if comparable(a) != comparable(b):
            problems.append(f"trial {a.id} differs: {json.dumps(comparable(a))[:200]} vs {json.dumps(comparable(b))[:200]}")
    return problems


def reproduce(run_dir: Path, out_dir: Path | None = None, overrides: list[str] = (), show_progress: bool = True) -> Path:
    cfg = load_saved_config(run_dir)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    out_dir = out_dir or Path("outputs") / "reproduce" / f"{run_dir.name}_{stamp}"
    with RunDir(out_dir).writing() as run:
        run.attach_log(console_warnings=False)
        run_experiment(cfg, out_dir, show_progress=show_progress, saved_config={"config": OmegaConf.to_yaml(cfg)})
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nasrun-reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished nasrun run directory")
    parser.add_argument("overrides", nargs="*", help="optional key=value changes (e.g. hardware.device=cpu)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the new run (default outputs/reproduce/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the new trials equal the original ones")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    def reproduce_and_check() -> int:
        new_dir = reproduce(args.run_dir.resolve(), args.out, args.overrides, show_progress=not args.no_progress)
        say(f"reproduced into {new_dir}")
        if not args.check:
            return 0
        problems = compare_trials(args.run_dir, new_dir)
        if problems:
            console.print("[bold red]trials differ:[/]\n" + escape("\n".join(problems)), highlight=False)
            return 1
        console.print("[green]identical trials[/]")
        return 0

    run_command("nasrun-reproduce", reproduce_and_check)


if __name__ == "__main__":
    main()
