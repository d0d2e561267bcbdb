"""`nasrun.log`: the handler that Hydra's job logging (conf/hydra/job_logging/nasrun.yaml) and the
commands attach. It opens the file on the first record (so a command refused before it logs anything
leaves no file), never through a link, and appends each record whole or not at all (a full disk drops a
record; the run's own writes report the problem).

A resumed run holds its records in memory (`HeldLogHandler`) until its saved state has been read back
(`release_held_logs`): a resume that is refused (corrupt checkpoint, ...) changes no file, nasrun.log
included."""

from __future__ import annotations

import logging
import logging.handlers
import os

from nasrun.state.files import append_to, open_append


class RunLogHandler(logging.FileHandler):
    def __init__(self, filename, mode: str = "a", encoding: str | None = "utf-8", delay: bool = True,
                 errors: str | None = None):
        super().__init__(filename, "a", encoding, delay=True, errors=errors)
        self.fd: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + self.terminator).encode(self.encoding or "utf-8", "replace")
            if self.fd is None:
                self.fd = open_append(self.baseFilename)
            append_to(self.fd, data, self.baseFilename)
        except Exception:  # noqa: BLE001 - see handleError
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A record that cannot be written is dropped, without logging's traceback on stderr."""

    def close(self) -> None:
        self.acquire()
        try:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
        finally:
            self.release()
        super().close()


class HeldLogHandler(logging.handlers.MemoryHandler):
    """Keeps records in memory until `release()`; dropped if the process ends before."""

    def __init__(self, target: logging.Handler):
        super().__init__(capacity=1_000_000, flushLevel=logging.CRITICAL + 1, target=target, flushOnClose=False)

    released = False

    def release_records(self) -> None:
        self.capacity, self.released = 1, True  # every later record goes straight through
        self.flush()


def release_held_logs() -> None:
    """Write the records held back by every HeldLogHandler of the root logger, and those after them."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, HeldLogHandler):
            handler.release_records()


def discard_held_logs() -> None:
    """Drop the records still held back (the resume was refused) and stop holding."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, HeldLogHandler) and not handler.released:
            root.removeHandler(handler)
            handler.buffer.clear()
            handler.close()
