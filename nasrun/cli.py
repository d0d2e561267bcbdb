"""`nasrun`: the Hydra entry point. Thin: compose the config, run the experiment, report errors in one line."""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nasrun.errors import NasrunError
from nasrun.progress import console


def debug_mode(cfg: DictConfig | None = None) -> bool:
    """Full tracebacks with HYDRA_FULL_ERROR=1 or `debug=true`."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or bool(cfg is not None and cfg.get("debug", False))


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]nasrun: error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path="pkg://nasrun.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from nasrun.experiment import run_experiment

    try:
        summary = run_experiment(cfg, HydraConfig.get().runtime.output_dir, show_progress=cfg.get("progress", True))
    except NasrunError as err:
        if debug_mode(cfg):
            raise
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; trials finished so far are in trials.jsonl", code=130)
    return summary.get("best_val_accuracy")


def main() -> None:
    resume = [arg for arg in sys.argv[1:] if arg.startswith("resume=")]
    if resume:  # `nasrun resume=RUN_DIR` continues a run from its own saved config (nasrun/resume.py)
        from nasrun.resume import main as resume_main

        others = [arg for arg in sys.argv[1:] if arg not in (*resume, "progress=false")]
        if others or len(resume) > 1:
            fail(f"resume=RUN_DIR continues a run with its saved config and takes no other overrides, got {others}")
        resume_main([resume[0].split("=", 1)[1], *(["--no-progress"] if "progress=false" in sys.argv else [])])
        return
    hydra_main()


if __name__ == "__main__":
    main()
