"""Trials in parallel worker processes on this machine, one device per worker.

Each worker is a single-process `concurrent.futures.ProcessPoolExecutor` (spawn context), so a worker
that dies (killed, out of memory, a crash in native code) breaks only its own pool: the trial it was
running is retried on a fresh worker (`retries`) or recorded as failed, and the search goes on.
The bound estimator, data included, is pickled once and sent to each worker when it starts.

Devices: with CUDA hardware, workers take the visible GPUs round-robin; otherwise every worker uses
the CPU with `threads = usable cores // workers` (or `hardware.threads` when set, and one thread for small
images; nasrun.machine says which cores are usable and why). The workers inherit the OpenMP wait policy
of the `nasrun` command.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import multiprocessing
import pickle
from concurrent.futures.process import BrokenProcessPool

import torch

from nasrun.errors import ConfigError, NasrunError
from nasrun.executors.base import Executor, TrialJob, run_trial
from nasrun.records import Trial
from nasrun.machine import choose_threads

log = logging.getLogger("nasrun")
_WORKER: dict = {}  # inside a worker process: its estimator and name
# A worker imports torch and nasrun and unpickles the estimator before it is ready: seconds, a minute on a
# loaded machine. One that is not ready in this time hangs (a blocking import, an estimator that waits in
# its unpickling); without a limit the search would wait for it forever.
START_TIMEOUT_S = 600.0


def _start_worker(estimator_bytes: bytes, device: str, threads: int, name: str) -> None:
    estimator = pickle.loads(estimator_bytes)
    estimator.hardware = dataclasses.replace(estimator.hardware, device=device, threads=threads)
    estimator.hardware.apply()
    if estimator.hardware.is_cuda:
        torch.cuda.set_device(torch.device(device))
    _WORKER.update(estimator=estimator, name=name)


def _ready() -> str:
    return _WORKER["name"]


def _evaluate(job: TrialJob) -> bytes:
    """Run one trial in the worker; plain pickle bytes carry the result (weights included) back."""
    return pickle.dumps(run_trial(_WORKER["estimator"], job, worker=_WORKER["name"]))


def worker_devices(device: str, workers: int, devices: list[str] | None = None) -> list[str]:
    """The device of each worker: the configured list, else visible GPUs round-robin, else the CPU."""
    if devices:
        return [str(devices[i % len(devices)]) for i in range(workers)]
    if device.startswith("cuda") and torch.cuda.device_count() > 0:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    return ["cpu"] * workers


class ProcessesExecutor(Executor):
    def __init__(self, workers: int = 2, retries: int = 0, devices: list[str] | None = None):
        if isinstance(workers, bool) or int(workers) < 1:
            raise ConfigError(f"executor.workers must be a positive integer, got {workers!r}")
        if int(retries) < 0:
            raise ConfigError(f"executor.retries must be >= 0, got {retries!r}")
        self.workers, self.retries, self.devices = int(workers), int(retries), devices

    def start(self, estimator) -> None:
        super().start(estimator)
        try:
            self.estimator_bytes = pickle.dumps(estimator)
        except Exception as err:  # noqa: BLE001 - lambdas, open files, ... in a custom estimator
            raise NasrunError(f"executor=processes needs a picklable estimator: {type(err).__name__}: {err}") from None
        hardware = estimator.hardware
        self.slot_devices = worker_devices(hardware.device, self.workers, self.devices)
        data = getattr(estimator, "data", None)
        input_shape = data.input_shape if data is not None else None
        self.thread_choice = choose_threads(hardware.threads, self.workers, input_shape)
        self.threads = self.thread_choice.threads
        log.info("executor=processes: %d workers, %d CPU threads each (%s)", self.workers, self.threads,
                 self.thread_choice.why)
        self.context = multiprocessing.get_context("spawn")
        self.pools = [self._new_pool(slot) for slot in range(self.workers)]
        self.running: dict[cf.Future, tuple[int, TrialJob, int]] = {}  # future -> (slot, job, attempt)
        self.queue: list[tuple[TrialJob, int]] = []
        for ready in [pool.submit(_ready) for pool in self.pools]:
            self._check_started(ready)

    def _new_pool(self, slot: int) -> cf.ProcessPoolExecutor:
        device = self.slot_devices[slot]
        name = f"proc{slot}:{device}"
        return cf.ProcessPoolExecutor(max_workers=1, mp_context=self.context, initializer=_start_worker,
                                      initargs=(self.estimator_bytes, device, self.threads, name))

    def _check_started(self, ready: cf.Future) -> None:
        try:
            ready.result(timeout=START_TIMEOUT_S)
        except BrokenProcessPool as err:
            self.shutdown(terminate=True)
            raise NasrunError(f"executor=processes: a worker process could not start ({err})") from None
        except cf.TimeoutError:
            self.shutdown(terminate=True)
            raise NasrunError(f"executor=processes: a worker process was not ready within {START_TIMEOUT_S:g} s "
                              "(it hung importing nasrun or unpickling the estimator); no trial was run") from None

    def submit(self, job: TrialJob, report=None) -> None:
        self.queue.append((job, 0))
        self._dispatch()

    def _dispatch(self) -> None:
        busy = {slot for slot, _, _ in self.running.values()}
        for slot in range(self.workers):
            if not self.queue:
                return
            if slot not in busy:
                job, attempt = self.queue.pop(0)
                self.running[self.pools[slot].submit(_evaluate, job)] = (slot, job, attempt)

    def wait(self) -> list[tuple[Trial, object]]:
        while True:
            done, _ = cf.wait(list(self.running), return_when=cf.FIRST_COMPLETED)
            finished = [result for future in done if (result := self._collect(future)) is not None]
            self._dispatch()
            if finished:
                return finished

    def _collect(self, future: cf.Future):
        """The trial of a finished future, or None when its worker died and the job is retried."""
        slot, job, attempt = self.running.pop(future)
        try:
            return pickle.loads(future.result())
        except BrokenProcessPool:
            self.pools[slot].shutdown(wait=False)
            self.pools[slot] = self._new_pool(slot)
            if attempt < self.retries:
                self.queue.insert(0, (job, attempt + 1))
                return None
            error = (f"WorkerDied: the worker process running this trial died (killed, out of memory or a "
                     f"native crash) after {attempt + 1} attempt(s)")
        except Exception as err:  # noqa: BLE001 - e.g. a result that cannot be unpickled
            error = f"{type(err).__name__}: {err}"
        worker = f"proc{slot}:{self.slot_devices[slot]}"
        return Trial(id=job.id, arch=job.arch, status="failed", error=error, seed=job.seed, worker=worker), None

    def shutdown(self, terminate: bool = False) -> None:
        """Stop the workers. Trials still running (the search ended early: an error, Ctrl-C) are
        abandoned: their processes are terminated rather than waited for (every worker's, with
        `terminate`: workers that failed to start)."""
        busy = {slot for slot, _, _ in getattr(self, "running", {}).values()}
        for slot, pool in enumerate(getattr(self, "pools", [])):
            if terminate or slot in busy:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        self.running = {}
