"""Writing a run directory's files: every file is created fresh and replaced whole (a temp file in the same
folder, then a rename: a crash, a full disk or a link planted at its name never leaves half a file or
writes through the link); append-only logs get whole lines or nothing. A write that fails (read-only
directory, disk full) is one RunDirError line."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from nasrun.errors import RunDirError

APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def write_error(path: str | Path, err: OSError) -> RunDirError:
    """A failed write as one line: what could not be written, and why."""
    reason = err.strerror or type(err).__name__
    return RunDirError(f"cannot write {path}: {reason}")


def atomic_write(path: str | Path, data: str | bytes, durable: bool = True) -> None:
    """Write `data` to `path` via a fresh temp file and a rename: never half a file, and a link at `path`
    is replaced, never followed. `durable` also fsyncs (survives a power cut)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        remove_file(tmp)
        raise write_error(path, err) from None
    except BaseException:
        remove_file(tmp)
        raise


def remove_file(path: str | Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def open_append(path: str | Path) -> int:
    """A file descriptor for appending to `path` (created, with its folder, if missing); a link at `path`
    is refused."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, APPEND_FLAGS, 0o644)
    except OSError as err:
        if Path(path).is_symlink():
            raise RunDirError(f"{path} is a link; nasrun appends only to files it made") from None
        raise write_error(path, err) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunDirError(f"{path} is not a regular file")
    return fd


def append_to(fd: int, data: bytes, path: str | Path, durable: bool = False) -> None:
    """Append `data` whole to the open file, or not at all: a write cut short (disk full) is undone."""
    start = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except OSError as err:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise write_error(path, err) from None


def append_bytes(path: str | Path, data: bytes, durable: bool = False) -> None:
    """Append `data` to `path` whole or not at all (see `append_to`)."""
    fd = open_append(path)
    try:
        append_to(fd, data, path, durable)
    finally:
        os.close(fd)


def remove_tree(path: str | Path) -> None:
    """Delete a folder the run made; a link is never followed (nor removed: the run did not make it)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return
    shutil.rmtree(path, ignore_errors=True)
