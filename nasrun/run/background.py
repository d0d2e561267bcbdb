"""A writer thread for trackers: the search hands it writes and never waits for them (nasrun/run/trackers.py)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger("nasrun")


class BackgroundWriter:
    """Runs `open` and then each submitted write, in order, on one daemon thread (started by the first write).
    A failing `open` turns the writer off; a failing write is a warning, and after `max_failures` failures in
    a row the writer gives up (the rest is dropped) rather than holding every later trial on a broken database."""

    def __init__(self, name: str, open_fn: Callable[[], None], max_failures: int = 3):
        self.name, self.open_fn, self.max_failures = name, open_fn, max_failures
        self.jobs: queue.Queue = queue.Queue()
        self.done = self.failures = self.dropped = 0
        self.broken = False
        self.thread: threading.Thread | None = None

    def submit(self, what: str, fn: Callable, *args) -> None:
        """Queue a write; the first one starts the thread (so a run refused before its first trial, e.g. a
        resume of a corrupt run dir, opens and writes nothing)."""
        if self.broken:
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name=f"nasrun-{self.name}", daemon=True)
            self.thread.start()
        self.jobs.put((what, fn, args))

    def _work(self) -> None:
        try:
            self.open_fn()
        except Exception as err:  # noqa: BLE001 - tracking must never fail the search
            self._give_up(f"could not open: {type(err).__name__}: {first_line(err)}")
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                return
            what, fn, args = job
            if self.broken:
                self.dropped += 1
            else:
                self._run(what, fn, args)
            self.done += 1
            self.jobs.task_done()

    def _run(self, what: str, fn: Callable, args) -> None:
        try:
            fn(*args)
            self.failures = 0
        except Exception as err:  # noqa: BLE001
            self.failures += 1
            log.warning("%s tracker: could not write %s: %s: %s (the search goes on)", self.name, what,
                        type(err).__name__, first_line(err))
            if self.failures >= self.max_failures:
                self._give_up(f"{self.failures} writes in a row failed")

    def _give_up(self, why: str) -> None:
        self.broken = True
        log.warning("%s tracker: %s; it records nothing more for this run (the search goes on)", self.name, why)

    def drain(self, patience: float = 60.0) -> None:
        """Wait until every write submitted so far is done, as long as writes keep finishing: a database
        that stays locked for `patience` seconds is left behind with a warning."""
        last, since = self.done, time.monotonic()
        while self.thread is not None and self.jobs.unfinished_tasks and self.thread.is_alive():
            time.sleep(0.02)
            if self.done != last:
                last, since = self.done, time.monotonic()
            elif time.monotonic() - since > patience:
                log.warning("%s tracker: no write finished in %.0f s; %d left unwritten", self.name, patience,
                            self.jobs.unfinished_tasks)
                return

    def close(self, patience: float = 60.0) -> None:
        """Finish the writes (see `drain`) and end the thread."""
        if self.thread is None:
            return
        self.jobs.put(None)
        self.drain(patience)
        if self.dropped:
            log.warning("%s tracker: %d write(s) were dropped after the failures above", self.name, self.dropped)


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]
