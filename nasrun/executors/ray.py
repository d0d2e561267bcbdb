"""Each trial a Ray task with the configured resources, on a local Ray instance or an existing cluster.

`address: null` starts a private local Ray (no dashboard, a small object store) and stops it at the
end; `auto` or `ray://host:port` connects to a running cluster. The bound estimator goes into the object
store once; each Ray worker process unpickles it once and keeps it for the trials it runs. A task whose
worker dies is retried by Ray `retries` times, then its trial is recorded as failed and the search goes on.
Ray is optional: `pip install nasrun[ray]`.
"""

from __future__ import annotations

import dataclasses
import math
import os

from nasrun.errors import ConfigError, NasrunError
from nasrun.executors.base import Executor, TrialJob, run_trial
from nasrun.records import Trial
from nasrun.machine import ThreadChoice, openmp_wait, prepare_openmp

_ESTIMATORS: dict = {}  # inside a Ray worker process: object-ref hex -> unpickled estimator


def import_ray():
    try:
        import ray
    except ImportError:
        raise NasrunError("executor=ray needs Ray, which is not installed: pip install 'nasrun[ray]'") from None
    return ray


def _worker_estimator(estimator_ref: list, threads: int):
    """This worker's copy of the run's estimator, unpickled on its first trial and kept for the next ones
    (the ref comes in a list so that Ray hands it over unresolved)."""
    import ray

    key = estimator_ref[0].hex()
    if key not in _ESTIMATORS:
        prepare_openmp()  # before the estimator's unpickling loads torch in this worker process
        estimator = ray.get(estimator_ref[0])
        cuda = estimator.hardware.is_cuda and len(ray.get_gpu_ids()) > 0
        estimator.hardware = dataclasses.replace(estimator.hardware, device="cuda" if cuda else "cpu", threads=threads)
        _ESTIMATORS.clear()
        _ESTIMATORS[key] = estimator
    estimator = _ESTIMATORS[key]
    estimator.hardware.apply()
    return estimator


def _worker_name(estimator) -> str:
    import ray

    return f"ray:{ray.get_runtime_context().get_node_id()[:8]}:{os.getpid()}:{estimator.hardware.device}"


def _warm_up(estimator_ref: list, threads: int) -> str:
    return _worker_name(_worker_estimator(estimator_ref, threads))


def _evaluate_on_worker(estimator_ref: list, job: TrialJob, threads: int):
    estimator = _worker_estimator(estimator_ref, threads)
    return run_trial(estimator, job, worker=_worker_name(estimator))


class RayExecutor(Executor):
    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 workers: int | None = None, retries: int = 0, local_cpus: int | None = None,
                 object_store_mb: int = 256):
        if float(num_cpus) < 0 or float(num_gpus) < 0 or int(retries) < 0:
            raise ConfigError(f"executor: num_cpus, num_gpus and retries must be >= 0, got {num_cpus}, {num_gpus}, {retries}")
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ConfigError(f"executor.workers must be a positive integer or null, got {workers!r}")
        self.address, self.num_cpus, self.num_gpus = address, float(num_cpus), float(num_gpus)
        self.requested_workers, self.retries = workers, int(retries)
        self.local_cpus, self.object_store_mb = local_cpus, int(object_store_mb)
        self.workers = int(workers) if workers else 1

    def start(self, estimator) -> None:
        super().start(estimator)
        ray = self.ray = import_ray()
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            self._init_ray()
        self.workers = int(self.requested_workers or self._cluster_slots())
        self.threads = max(1, int(self.num_cpus))
        self.thread_choice = ThreadChoice(self.threads, f"executor.num_cpus={self.num_cpus:g}", openmp_wait())
        try:
            self.estimator_ref = ray.put(estimator)
        except Exception as err:  # noqa: BLE001
            raise NasrunError(f"executor=ray needs a picklable estimator: {type(err).__name__}: {err}") from None
        self.task = ray.remote(_evaluate_on_worker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.retries, retry_exceptions=False)
        self.running: dict = {}  # object ref -> job
        self._warm_up()

    def _warm_up(self) -> None:
        """Start one worker per slot and load the estimator there, so that start-up is paid here and a
        worker that cannot load it fails now, in one line."""
        warm = self.ray.remote(_warm_up).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus)
        try:
            self.ray.get([warm.remote([self.estimator_ref], self.threads) for _ in range(self.workers)])
        except self.ray.exceptions.RayError as err:
            self.shutdown()
            lines = [line for line in str(err).strip().splitlines() if line.strip()]
            raise NasrunError(f"executor=ray: a worker could not load the estimator: {lines[-1] if lines else err}") from None

    def _init_ray(self) -> None:
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is None:
            kwargs.update(num_cpus=self.local_cpus, object_store_memory=self.object_store_mb * 2**20)
        try:
            self.ray.init(address=self.address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise NasrunError(f"executor=ray: could not start or reach Ray at address={self.address}: "
                              f"{str(err).splitlines()[0]}") from None

    def _cluster_slots(self) -> int:
        """How many tasks of the configured size the cluster fits at once."""
        resources = self.ray.cluster_resources()
        slots = [resources.get("CPU", 0) / self.num_cpus if self.num_cpus else math.inf,
                 resources.get("GPU", 0) / self.num_gpus if self.num_gpus else math.inf]
        fits = min(slots)
        if fits < 1:
            raise NasrunError(f"executor=ray: no node has num_cpus={self.num_cpus}, num_gpus={self.num_gpus} "
                              f"(cluster: {resources.get('CPU', 0)} CPUs, {resources.get('GPU', 0)} GPUs)")
        return int(fits) if math.isfinite(fits) else 1

    def submit(self, job: TrialJob, report=None) -> None:
        self.running[self.task.remote([self.estimator_ref], job, self.threads)] = job

    def wait(self):
        refs = list(self.running)
        self.ray.wait(refs, num_returns=1)
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref):
        job = self.running.pop(ref)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.WorkerCrashedError:
            error = (f"WorkerDied: the Ray worker running this trial died (killed, out of memory or a native "
                     f"crash) after {self.retries + 1} attempt(s)")
        except self.ray.exceptions.RayError as err:
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        return Trial(id=job.id, arch=job.arch, status="failed", error=error, seed=job.seed, worker="ray"), None

    def shutdown(self) -> None:
        if getattr(self, "started_ray", False):
            self.ray.shutdown()
            self.started_ray = False
