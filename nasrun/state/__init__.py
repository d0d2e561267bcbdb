"""Saved state, in one place: how nasrun reads and writes a run directory, which it treats as data
(a run directory may come zipped from a colleague, sit on a read-only mount, or be resumed elsewhere).

    links.py      nothing resolves outside the directory: a link that leads out is refused, naming it
    lock.py       one writer at a time: an exclusive flock on <dir>/.nasrun.lock, naming its process
    files.py      files created fresh and replaced whole (temp + rename, never through a link); appends
                  whole or not at all; deletion only of folders the run made; failed writes as one line
    reads.py      bounded reads: regular files only, a size cap per kind of file, YAML without aliases
    jsonlines.py  the append-only JSON-lines log (trials, α per epoch, trial times) with torn-line repair
    logfile.py    nasrun.log's handler (no link followed, whole records; held back during a resume)
    training.py   training checkpoints: tensors saved whole, read back with weights_only; TrainingState

`nasrun.rundir.RunDir` names the files and opens a run directory through these (`RunDir.writing()`,
`RunDir.check()`); nothing else in nasrun opens a run directory's files directly.
"""

from nasrun.state.files import append_bytes, atomic_write, remove_tree
from nasrun.state.jsonlines import JsonLines
from nasrun.state.links import check_links
from nasrun.state.lock import LOCK_NAME, RunLock
from nasrun.state.logfile import HeldLogHandler, RunLogHandler, discard_held_logs, release_held_logs
from nasrun.state.reads import LIMITS, open_bounded, read_json, read_json_object, read_text, read_yaml
from nasrun.state.training import TrainingState, load_checkpoint, save_checkpoint

__all__ = ["JsonLines", "LIMITS", "LOCK_NAME", "HeldLogHandler", "RunLock", "RunLogHandler", "TrainingState",
           "append_bytes", "atomic_write", "check_links", "discard_held_logs", "load_checkpoint", "open_bounded",
           "read_json", "read_json_object", "read_text", "read_yaml", "release_held_logs", "remove_tree",
           "save_checkpoint"]
