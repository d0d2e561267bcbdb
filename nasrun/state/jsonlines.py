"""The append-only JSON-lines log (trials.jsonl, alphas.jsonl, checkpoints/trial_times.jsonl).

A line counts once its newline is written: readers take the complete lines only, so a reader beside a
writer (`nasrun-report` during a run) or after a crash never sees half a record. Each line is appended
whole or not at all (a full disk leaves the file as it was), never through a link, and `repair()` cuts
a tail torn by a crash before a resumed run appends again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from nasrun.state.files import append_bytes, append_to, atomic_write, open_append, write_error
from nasrun.state.reads import read_text

log = logging.getLogger("nasrun")


class JsonLines:
    """`compact` writes lines without spaces; `keep_open` keeps the file open between appends (a log
    appended to after every ask) until `close()`."""

    def __init__(self, path: str | Path, durable: bool = False, what: str = "log", compact: bool = False,
                 keep_open: bool = False):
        self.path, self.durable, self.what = Path(path), durable, what
        self.separators = (",", ":") if compact else None
        self.keep_open, self._fd = keep_open, None

    def append(self, record: Any) -> None:
        """One JSON line; fsynced too when `durable` (it then survives a power cut)."""
        data = (json.dumps(record, separators=self.separators) + "\n").encode()
        if not self.keep_open:
            append_bytes(self.path, data, self.durable)
            return
        if self._fd is None:
            self._fd = open_append(self.path)
        append_to(self._fd, data, self.path, self.durable)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _text(self) -> str:
        try:
            return read_text(self.path, "jsonl", self.what)
        except FileNotFoundError:
            return ""

    def lines(self) -> list[str]:
        """The complete lines (blank ones included, so that line numbers match the file)."""
        return complete_lines(self._text())

    def repair(self) -> bool:
        """Cut an incomplete last line, so the next append starts on a line of its own; True if it cut."""
        text = self._text()
        if not text or text.endswith("\n"):
            return False
        keep = len(text[:text.rfind("\n") + 1].encode())
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, keep)
            finally:
                os.close(fd)
        except OSError as err:
            raise write_error(self.path, err) from None
        log.warning("resume: cut an incomplete last line from %s", self.path)
        return True

    def keep(self, wanted: Callable[[str], bool]) -> None:
        """Rewrite the log (atomically) with only the complete lines `wanted` accepts."""
        text = self._text()
        lines = complete_lines(text)
        kept = [line for line in lines if line.strip() and wanted(line)]
        if kept != lines or not text.endswith("\n") and text:
            atomic_write(self.path, "".join(line + "\n" for line in kept), self.durable)


def complete_lines(text: str) -> list[str]:
    return text[:text.rfind("\n") + 1].split("\n")[:-1]
