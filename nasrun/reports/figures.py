"""Figures through matplotlib's object API (no pyplot: no global state, no display or backend needed)."""

from __future__ import annotations

from pathlib import Path

from nasrun.errors import NasrunError


def new_figure(width: float = 6.4, height: float = 4.0, layout: str | None = "constrained"):
    """A matplotlib Figure (not pyplot: no global state). Constrained layout costs seconds on a grid of
    many panels: pass layout=None and place them with `subplots_adjust`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NasrunError("plots need matplotlib: pip install matplotlib") from None

    return Figure(figsize=(width, height), layout=layout)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG (or whatever the suffix says), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
