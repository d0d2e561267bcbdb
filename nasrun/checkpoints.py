"""Checkpoints: written atomically (temp file + rename), read back with `weights_only=True` so a
checkpoint can never run code, and a truncated or corrupt file is a clear error naming the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nasrun.errors import CheckpointError


def save_checkpoint(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, unsafe pickle
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:160]}); delete it to start that part afresh") from None
