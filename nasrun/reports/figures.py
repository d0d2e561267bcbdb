"""Figures through matplotlib's object API (no pyplot: no global state, no display or backend needed)."""

from __future__ import annotations

import io
from pathlib import Path

from nasrun.errors import NasrunError
from nasrun.state import atomic_write


def new_figure(width: float = 6.4, height: float = 4.0, layout: str | None = "constrained"):
    """A matplotlib Figure (not pyplot: no global state). Constrained layout costs seconds on a grid of
    many panels: pass layout=None and place them with `subplots_adjust`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NasrunError("plots need matplotlib: pip install matplotlib") from None

    return Figure(figsize=(width, height), layout=layout)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG (or whatever the suffix says) whole, creating the folder (nasrun.state.atomic_write)."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    atomic_write(path, buffer.getvalue(), durable=False)
    return path
