"""The run-directory lock: a command that writes to a directory holds an exclusive `fcntl.flock` on
`<dir>/.nasrun.lock` (which names its process) for as long as it runs; a second one is refused with one
line and changes nothing. The lock file is removed when the lock is released (so a refused command
leaves no file behind); the kernel releases the lock of a killed process. Re-entrant within a process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nasrun.errors import RunDirError

LOCK_NAME = ".nasrun.lock"


class RunLock:
    """`with RunLock(directory):` holds the directory's lock (RunDirError when another process does)."""

    _held: dict[str, list] = {}  # realpath -> [fd, depth], the locks this process holds

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.key = os.path.realpath(self.directory)

    def __enter__(self) -> "RunLock":
        held = RunLock._held.get(self.key)
        if held is not None:
            held[1] += 1
            return self
        RunLock._held[self.key] = [self._acquire(), 1]
        return self

    def __exit__(self, *exc) -> None:
        held = RunLock._held[self.key]
        held[1] -= 1
        if held[1] == 0:
            del RunLock._held[self.key]
            fd = held[0]
            try:
                if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    os.unlink(self.path)
            except OSError:
                pass
            os.close(fd)  # releases the lock

    def _acquire(self) -> int:
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise RunDirError(f"run directory {self.directory} is in use by process {holder}; wait for it to "
                                  "finish (or stop it) and run this again") from None
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its last holder removed while we opened it
                self._write_pid(fd)
                return fd
            os.close(fd)

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if self.path.is_symlink():
                raise RunDirError(f"{self.path} is a link; remove it (nasrun makes its lock file itself)") from None
            if not self.directory.is_dir():
                raise RunDirError(f"{self.directory} is not a directory") from None
            raise RunDirError(f"cannot write to the run directory {self.directory} ({err.strerror}): a read-only "
                              "directory can be read, not resumed or written into (copy it somewhere "
                              "writable)") from None

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            text = os.pread(fd, 32, 0).decode().strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        return text if text.isdigit() else "(unknown)"

    @staticmethod
    def _write_pid(fd: int) -> None:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same
            pass
