"""Training checkpoints: tensors written whole and read back safely, and the state that resumes a training
loop where it stopped (model, optimisers, scheduler, torch RNG, epoch and what else the loop keeps).

One-shot searches (checkpoints/search_state.pt), the weight-sharing supernet (checkpoints/supernet.pt) and
multi-fidelity trials (checkpoints/fidelity/trial_N.pt) all save and restore through `TrainingState`.
torch is imported when a checkpoint is written or read: the rest of nasrun.state needs none.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from nasrun.errors import CheckpointError
from nasrun.state.files import atomic_write
from nasrun.state.reads import open_bounded


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """Tensors (and plain containers of them) to `path`, atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> Any:
    """What `save_checkpoint` wrote; a missing, oversized, truncated or unsafe file is a one-line CheckpointError.
    Read with `weights_only=True`: a file can never run code."""
    import torch

    path = Path(path)
    try:
        with open_bounded(path, "checkpoint", "checkpoint") as handle:
            return torch.load(handle, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} not found") from None
    except CheckpointError:
        raise
    except Exception as err:  # truncated zip, garbage bytes, unsafe pickle
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:160]}); delete it to start that part afresh") from None


class TrainingState:
    """The parts of a training loop, by the names their state is saved under (anything with `state_dict`
    and `load_state_dict`: model, optimisers, scheduler), and with `rng` the torch RNG states (`torch_rng`,
    `cuda_rng`). `capture(**fields)` is the state to save, fields (epoch, ...) beside the parts;
    `restore(state)` puts it back."""

    def __init__(self, rng: bool = True, **parts: Any):
        self.parts, self.rng = parts, rng

    def capture(self, **fields: Any) -> dict:
        import torch

        state = {**fields, **{name: part.state_dict() for name, part in self.parts.items()}}
        if self.rng:
            state["torch_rng"] = torch.get_rng_state()
            state["cuda_rng"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return state

    def restore(self, state: dict) -> dict:
        """Load every part's saved state (and the RNG's); returns `state`, for the fields."""
        import torch

        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        if self.rng:
            torch.set_rng_state(state["torch_rng"])
            if state.get("cuda_rng") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        return state

    def save(self, path: str | Path, **fields: Any) -> None:
        save_checkpoint(self.capture(**fields), path)
