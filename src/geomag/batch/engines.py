"""Where a batch's jobs run: `local` (this process, one model load) or `ray` (a Ray Data actor pool).

Both take the jobs and yield one output per job (`runner.Output`, masks as RLE) as jobs finish; the
driver (`geomag.batch.run`) writes every file and line from what is yielded, keyed, so a job Ray
retries after a worker died is written once.

Ray: `ray.data.from_items(jobs).map_batches(BatchActor, concurrency=workers, num_gpus=...,
batch_size=...)`; each actor loads the model once in its constructor. An actor that dies is
restarted and its unfinished batch retried (`max_restarts`, `max_task_retries`); if retries run
out the batch stops with an error, and a rerun does only the jobs not yet in results.jsonl.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from geomag.batch.jobs import BatchSettings, Job
from geomag.batch.runner import JobRunner, Output
from geomag.errors import GeoMagError
from geomag.threads import use_threads, worker_threads

RAY_MISSING = "--engine ray needs Ray Data: pip install 'geomag[ray]'"
RETRIES = 3  # restarts of a dead actor, and retries of the batch it was running


def _runner(settings: BatchSettings) -> JobRunner:
    from geomag.api import load_predictor
    from geomag.model.registry import model_key

    return JobRunner(load_predictor(model_key(settings.model), settings.options["device"]), settings)


def run_local(jobs: Sequence[Job], settings: BatchSettings) -> Iterator[Output]:
    """The outputs of `jobs`, one after the other, on one predictor in this process."""
    if not jobs:
        return
    runner = _runner(settings)
    for job in jobs:
        yield runner.run(job)


class BatchActor:
    """A Ray Data worker: loads the model once, then maps batches of jobs (JSON) to outputs (JSON).

    JSON strings in and out keep Arrow from inferring a schema from results whose boxes and masks
    differ from job to job."""

    def __init__(self, settings: dict[str, Any], threads: int = 1) -> None:
        use_threads(threads)  # before the model loads: each worker task its own share (geomag.threads)
        self.runner = _runner(BatchSettings(**settings))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        outputs = [json.dumps(self.runner.run(Job.from_dict(json.loads(str(j))))) for j in batch["job"]]
        return {"key": [str(k) for k in batch["key"]], "output": outputs}


@dataclass(frozen=True)
class RayOptions:
    """How `--engine ray` runs: the actor pool and the cluster."""

    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    batch_size: int = 1
    address: str | None = None  # None: start a local cluster (and stop it at the end)
    num_cpus: int | None = None  # of that local cluster (default: the machine's)
    retries: int = RETRIES


def import_ray() -> Any:
    """The `ray` module (with Ray Data), or the one line that says how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise GeoMagError(RAY_MISSING) from None
    return ray


def connect(options: RayOptions) -> bool:
    """Join the cluster at `options.address`, or start a local one; True when this call started it
    (so the batch shuts it down); False when Ray was already initialised (a test's shared cluster)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    if options.address:
        try:
            ray.init(address=options.address, **quiet)
        except (ConnectionError, RuntimeError) as exc:
            raise GeoMagError(f"cannot join the Ray cluster at {options.address}: {exc}") from None
    else:
        ray.init(num_cpus=options.num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
    return True


def run_ray(
    jobs: Sequence[Job],
    settings: BatchSettings,
    options: RayOptions,
    actor: type[BatchActor] = BatchActor,
) -> Iterator[Output]:
    """The outputs of `jobs` from a Ray Data actor pool, in the order they finish."""
    if not jobs:
        return
    ray = import_ray()
    started = connect(options)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the batch has its own bar
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        items = [{"key": j.key, "job": json.dumps(j.to_dict())} for j in jobs]
        blocks = max(1, min(10_000, -(-len(items) // options.batch_size)))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            actor,
            fn_constructor_kwargs={
                "settings": asdict(settings),
                "threads": worker_threads(options.cpus_per_worker),
            },
            concurrency=options.workers,
            batch_size=options.batch_size,
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker or None,
            max_restarts=options.retries,
            max_task_retries=options.retries,
        )
        try:
            for row in dataset.iter_rows():
                yield json.loads(row["output"])
        except Exception as exc:  # Ray's errors: actors that cannot start, retries run out
            raise GeoMagError(f"the Ray batch stopped ({_first_line(exc)}); a rerun resumes it") from None
    finally:
        if started:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    """The innermost message of a Ray error (a GeoMagError raised in an actor, say), on one line."""
    cause: BaseException = exc
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:
        cause = cause.cause
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    errors = [line for line in lines if "GeoMagError:" in line]
    if errors:
        return errors[-1].split("GeoMagError:", 1)[1].strip()[:300]
    return (lines[-1] if lines else repr(exc))[:300]
