"""`nasrun`: the Hydra entry point. Thin: compose the config, run the experiment, report errors in one line."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nasrun.commands.common import plain_experiment
from nasrun.console import print_error, print_warning
from nasrun.errors import NasrunError, NoResult

SWEEP_PROBLEMS: list[str] = []  # jobs of a multirun sweep that ended without a result


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files of conf/<group>/."""
    return sorted(p.name[:-5] for p in resources.files("nasrun.conf").joinpath(group).iterdir() if p.name.endswith(".yaml"))


def options_help(group: str) -> str:
    """`nasrun --help`'s list of a group's options (${nasrun_options:GROUP} in conf/hydra/help/nasrun.yaml),
    wrapped under the group's description."""
    indent = " " * 14
    return textwrap.fill(", ".join(group_options(group)), width=100, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False).lstrip()


OmegaConf.register_new_resolver("nasrun_options", options_help, replace=True)


def fresh_dir(path: str) -> str:
    """`path`, or `path_2`, `path_3`, ... : the first that did not exist, claimed by creating it (atomic, so
    runs started in the same second, in parallel or one after another, each get their own directory).
    ${nasrun_fresh_dir:...} in conf/config.yaml's default hydra.run.dir and hydra.sweep.dir; cached, so
    resolved once per run or sweep (Hydra copies the cache into each job's config: checked with the basic,
    joblib and submitit launchers). A directory given on the command line is taken as it is (a run's is
    refused if it holds another run)."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"cannot create the folder of the run directory, {parent}: {err.strerror or err}")
    for number in itertools.count(1):
        candidate = Path(path if number == 1 else f"{path}_{number}")
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            continue
        except OSError as err:
            fail(f"cannot create the run directory {candidate}: {err.strerror or err}")


OmegaConf.register_new_resolver("nasrun_fresh_dir", fresh_dir, use_cache=True, replace=True)


def debug_mode(cfg: DictConfig | None = None) -> bool:
    """Full tracebacks with HYDRA_FULL_ERROR=1 or `debug=true`."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or bool(cfg is not None and cfg.get("debug", False))


def fail(message: str, code: int = 2) -> None:
    print_error("nasrun", message)
    sys.exit(code)


# Before a run or a sweep, Hydra composes the whole config once only to read `hydra.mode` (whether a
# config asks for a sweep without -m), then composes it again to run: a large part of a command's start.
# None of nasrun's configs sets hydra.mode (tests/test_configs.py checks), so that first composition can
# only find one where the command line could bring it: a `hydra...` override (hydra.mode itself, a hydra/ group
# option, hydra.searchpath) or a config folder of the user's (--config-dir, --config-path, --config-name).
CONFIG_FOLDER_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def mode_needs_composing(overrides: list[str], argv: list[str]) -> bool:
    """Whether Hydra must compose the config to learn `hydra.mode` (else it is unset: None)."""
    if any(arg.split("=", 1)[0] in CONFIG_FOLDER_FLAGS for arg in argv):
        return True
    return any(override.split("=", 1)[0].lstrip("+~").startswith("hydra") for override in overrides)


def skip_needless_mode_composition() -> None:
    """Hydra's `get_mode` (internal) answers None without composing where nothing can set `hydra.mode`;
    a Hydra without that method is left alone."""
    from hydra._internal.hydra import Hydra

    original = getattr(Hydra, "get_mode", None)
    if original is None or getattr(original, "nasrun_shortcut", False):
        return

    def get_mode(self, config_name, overrides):
        return original(self, config_name, overrides) if mode_needs_composing(list(overrides), sys.argv[1:]) else None

    get_mode.nasrun_shortcut = True
    Hydra.get_mode = get_mode


@hydra.main(version_base="1.3", config_path="pkg://nasrun.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from nasrun.experiment import run_experiment  # here: `--help` and `--cfg job` import no component code

    try:
        summary = run_experiment(cfg, HydraConfig.get().runtime.output_dir, show_progress=cfg.get("progress", True),
                                 saved_config=saved_config(cfg))
    except NoResult as err:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            fail(str(err), err.exit_code)
        print_error("nasrun", f"job {HydraConfig.get().job.num}: {err}")  # the sweep goes on; exits 1 at the end
        SWEEP_PROBLEMS.append(str(err))
        return None
    except NasrunError as err:
        if debug_mode(cfg):
            raise
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        fail("interrupted; trials finished so far are in trials.jsonl", code=130)
    return summary.get("best_score")


def saved_config(cfg: DictConfig) -> dict[str, str]:
    """The texts of the run's .hydra/ files, as Hydra would write them (conf/config.yaml turns Hydra's own
    writing off: nasrun writes them once it holds the run directory, never into another run's)."""
    settings = HydraConfig.get()
    return {"config": OmegaConf.to_yaml(cfg), "overrides": OmegaConf.to_yaml(settings.overrides.task),
            "hydra": OmegaConf.to_yaml({"hydra": settings})}


def run_dir_problem(argv: list[str]) -> str | None:
    """Why the `hydra.run.dir=` of the command line cannot become a folder (a file in the way, a folder
    that is not writable), else None; checked before Hydra tries, which would answer with its traceback.
    Creates nothing."""
    given = [arg.split("=", 1)[1] for arg in argv if arg.startswith("hydra.run.dir=")]
    if not given or "${" in given[-1]:
        return None
    path = probe = Path(given[-1]).absolute()
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"hydra.run.dir={given[-1]}: {probe} is a file, not a folder"
    if probe != path and probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        return f"hydra.run.dir={given[-1]}: cannot create folders in {probe} (not writable)"
    return None


def unknown_group_choice(argv: list[str]) -> str | None:
    """A one-line message for `group=option` overrides that name no YAML of that group, else None.
    (Hydra's own message for this lists its whole search path.)"""
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
    except Exception:  # malformed overrides: Hydra explains those itself
        return None
    conf = resources.files("nasrun.conf")
    for override in overrides:
        group = override.key_or_group
        if "." in group or "/" in group or not conf.joinpath(group).is_dir() or override.is_delete():
            continue
        values = override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
        options = group_options(group)
        for value in values:
            if str(value) not in options:
                return f"unknown {group} '{value}' (available: {', '.join(options)})"
    return None


HYDRA_LISTINGS = ("$APP_CONFIG_GROUPS", "$HYDRA_CONFIG_GROUPS", "$FLAGS_HELP")  # what only Hydra's help fills in


def app_help(argv: list[str]) -> str | None:
    """What `nasrun [overrides] --help` prints: the help template (conf/hydra/help/nasrun.yaml) of the
    composed config. Written here because Hydra builds its listings of the config groups before it reads
    the template, copying its whole config repository once per group (over a second), even when the
    template shows none of them. None where Hydra should answer: other flags, Hydra's own settings, a
    template that asks for Hydra's listings."""
    overrides = [arg for arg in argv if arg not in ("--help", "-h")]
    if any(arg.startswith("-") or arg.lstrip("+~").startswith("hydra") for arg in overrides):
        return None
    from string import Template

    from nasrun.commands.common import compose_run_config

    cfg = compose_run_config(overrides, return_hydra_config=True)
    template = cfg.hydra.help.template
    if any(listing in template for listing in HYDRA_LISTINGS):
        return None
    config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return Template(template).safe_substitute(CONFIG=OmegaConf.to_yaml(config))


def main() -> None:
    sys.argv[1:] = plain_experiment(sys.argv[1:])
    resume = [arg for arg in sys.argv[1:] if arg.startswith("resume=")]
    if resume:  # `nasrun resume=RUN_DIR` continues a run from its own saved config (nasrun/commands/resume.py)
        others = [arg for arg in sys.argv[1:] if arg not in (*resume, "progress=false")]
        if others or len(resume) > 1:
            fail(f"resume=RUN_DIR continues a run with its saved config and takes no other overrides, got {others}")
        from nasrun.commands.resume import main as resume_main

        resume_main([resume[0].split("=", 1)[1], *(["--no-progress"] if "progress=false" in sys.argv else [])])
        return
    message = unknown_group_choice(sys.argv[1:]) or run_dir_problem(sys.argv[1:])
    if message:
        fail(message)
    help_text = app_help(sys.argv[1:]) if {"--help", "-h"} & set(sys.argv[1:]) else None
    if help_text is not None:
        print(help_text)
        return
    if {"-m", "--multirun"} & set(sys.argv[1:]):
        from nasrun.run.budget_check import sweep_warnings

        for warning in sweep_warnings([arg for arg in sys.argv[1:] if not arg.startswith("-")]):
            print_warning("nasrun", warning)
    skip_needless_mode_composition()
    hydra_main()
    if SWEEP_PROBLEMS:
        fail(f"{len(SWEEP_PROBLEMS)} job(s) of the sweep ended without a result (see the lines above)", code=1)


if __name__ == "__main__":
    main()
