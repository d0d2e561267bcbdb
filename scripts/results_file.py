"""Write a measurement as `results/<name>.md`: what ran, on what, when, with which torch, then its tables.

Every script under scripts/ that measures a published figure calls `write_results` once at its end, so
the numbers nasrun publishes are files the measuring script wrote, never figures copied by hand. A run
with other arguments overwrites the file too (its header then shows the other command): commit only
the runs you mean to publish, or set NASRUN_RESULTS_DIR to write elsewhere.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import date
from pathlib import Path
from typing import Sequence

RESULTS = Path(__file__).resolve().parents[1] / "results"


def write_results(name: str, title: str, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence]]],
                  notes: str = "", preamble: str = "", path: Path | None = None) -> Path:
    """Write `<results dir>/<name>.md` (or `path`) and return its path. `tables`: (caption, column names,
    rows), each row a sequence of cells (written with str()); `preamble`: markdown between the header and
    the tables (the settings); `notes`: markdown after the tables (what to read them as)."""
    import torch

    from nasrun.experiment import git_commit, git_dirty
    from nasrun.hardware import cpu_name
    from nasrun.rundir import atomic_write

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    commit = git_commit()
    lines = [f"# {title}", "",
             f"- command: `{shlex.join(['python', os.path.relpath(sys.argv[0], RESULTS.parent), *sys.argv[1:]])}`",
             f"- machine: {cpu_name()} ({os.cpu_count()} cores){gpu}",
             f"- date: {date.today().isoformat()}",
             f"- torch: {torch.__version__}",
             f"- nasrun: {commit[:10] if commit else 'not a git checkout'}{' (uncommitted changes)' if git_dirty() else ''}",
             ""]
    if preamble:
        lines += [preamble.strip(), ""]
    for caption, columns, rows in tables:
        if caption:
            lines += [caption, ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        lines.append("")
    if notes:
        lines += [notes.strip(), ""]
    path = Path(path) if path is not None else Path(os.environ.get("NASRUN_RESULTS_DIR", RESULTS)) / f"{name}.md"
    atomic_write(path, "\n".join(lines))
    print(f"wrote {path}")
    return path
