"""The one thread that runs the model, with a bounded queue in front of it.

The model is not thread-safe and one job already uses every core, so exactly one thread owns the
predictor (it is built on that thread and never touched elsewhere) and runs jobs one after another.
Requests wait in a queue of at most `max_waiting` jobs; one more is refused at once (`QueueFull`:
HTTP 503 with Retry-After), so a burst of clients gets a quick answer instead of a growing wait. A
job that is still waiting when its request gives up (timeout) is dropped without running; a running
one is stopped (`stop`): `JobStopped` is raised in the worker thread (CPython's
`PyThreadState_SetAsyncExc`), which takes effect at the next Python line the job runs, so the
overrun is bounded by one call into torch or GDAL (one layer, one window read), never the rest of
the job. `with` blocks unwind as for any exception and the next job sets its own image; /health
counts the jobs stopped so (`stopped_jobs`). One native call is not interruptible: the bounds on
uploads (pixels, raster samples) keep each one short.
"""

from __future__ import annotations

import ctypes
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from geomag.attention import decoder_layers
from geomag.model.registry import create_model
from geomag.predictor import GeoMagPredictor

T = TypeVar("T")
Job = Callable[[GeoMagPredictor], T]


class JobStopped(BaseException):
    """Raised inside a running job whose request gave up (a BaseException: no `except Exception`
    in the libraries underneath swallows it)."""


class QueueFull(Exception):
    """No room in the queue; `retry_after`: seconds after which a retry is likely to get in."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(f"the server is busy ({waiting} jobs waiting); retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Item(Generic[T]):
    job: Job[T]
    future: Future[T]
    queued_at: float
    left_queue: bool = False  # taken out of the waiting count (run, or cancelled while waiting)


class ModelWorker:
    """Runs jobs `job(predictor) -> value` on its own thread; `submit` returns a Future at once."""

    def __init__(self, make_predictor: Callable[[], GeoMagPredictor], max_waiting: int = 8) -> None:
        self.max_waiting = max_waiting
        self._make_predictor = make_predictor
        self._queue: queue.SimpleQueue[_Item[object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = False
        self._current: _Item[object] | None = None  # the job running now
        self.model_layers: int | None = None  # decoder layers of the model (the `layer` option's range)
        self.stopped_jobs = 0  # running jobs stopped because their request gave up
        self._seconds: list[float] = []  # durations of the last jobs, for Retry-After
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="geomag-model", daemon=True)

    # --- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the predictor on the worker thread and wait until it is loaded (its error re-raised)."""
        self._thread.start()
        self._ready.wait()
        if self._load_error is not None:
            raise self._load_error

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    # --- jobs --------------------------------------------------------------------------------------
    def submit(self, job: Job[T]) -> Future[T]:
        """Queue `job`; raises QueueFull when `max_waiting` jobs are waiting already."""
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise QueueFull(self._waiting, self._retry_after())
            self._waiting += 1
        future: Future[T] = Future()
        item = _Item(job, future, time.perf_counter())
        future.add_done_callback(lambda f: f.cancelled() and self._leave_queue(item))
        self._queue.put(item)  # type: ignore[arg-type]
        return future

    def stop_job(self, future: Future[T]) -> bool:
        """Give up `future`'s job: dropped if it still waits, stopped if it runs. True if it ran."""
        if future.cancel():
            return False
        with self._lock:
            if self._current is None or self._current.future is not future:
                return False
            ident = self._thread.ident
            assert ident is not None
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(JobStopped))
            self._current = None  # once: the exception is pending in the worker thread
            self.stopped_jobs += 1
            return True

    def _leave_queue(self, item: _Item[T]) -> bool:
        """Take `item` out of the waiting count once (the worker takes it, or its request gave up)."""
        with self._lock:
            if item.left_queue:
                return False
            item.left_queue = True
            self._waiting -= 1
            return True

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def running(self) -> bool:
        return self._running

    def _retry_after(self) -> int:
        per_job = sum(self._seconds) / len(self._seconds) if self._seconds else 5.0
        return max(1, min(600, math.ceil(per_job * (self._waiting + 1))))

    def _run(self) -> None:
        try:
            predictor = self._make_predictor()
        except BaseException as exc:  # handed to start(), which raises it on the caller's thread
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        while (item := self._queue.get()) is not None:
            try:
                self._run_one(item, predictor)
            except JobStopped:  # landed between the job's end and the bookkeeping: nothing to undo
                pass
            finally:
                with self._lock:
                    self._current = None
                self._running = False
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the job was stopped"))

    def _run_one(self, item: _Item[object], predictor: GeoMagPredictor) -> None:
        self._leave_queue(item)
        self._running = True
        if not item.future.set_running_or_notify_cancel():
            return  # its request gave up while it waited
        t = time.perf_counter()
        with self._lock:
            self._current = item
        try:
            value = item.job(predictor)
        except JobStopped:
            item.future.set_exception(RuntimeError("the job was stopped: its request gave up"))
            return
        except BaseException as exc:  # the request answers it; the worker goes on
            with self._lock:
                self._current = None
            item.future.set_exception(exc)
            return
        with self._lock:
            self._current = None
        item.future.set_result(value)
        self._seconds = [*self._seconds[-9:], time.perf_counter() - t]


def start_worker(
    model: str, device: str = "cpu", max_waiting: int = 8, threads: int | None = None
) -> ModelWorker:
    """A started worker whose predictor runs `model` (a name or checkpoint folder) on `device`,
    with the granularity classifier loaded (the first request does not pay for it).

    `threads`: torch threads of the worker thread (default: what `geomag.threads` gave the calling
    thread). Set on the worker thread itself because torch's count is per thread: a later
    `configure_threads` elsewhere in the process (a test's local parse, a CLI call in a notebook)
    must not leave the server's jobs on another count, whose different sums change the last digits
    of a result."""
    count = torch.get_num_threads() if threads is None else threads

    def make_predictor() -> GeoMagPredictor:  # on the worker thread: the model lives there only
        torch.set_num_threads(count)
        predictor = GeoMagPredictor(create_model(model, device=device), model_name=model)
        predictor.classify("warm-up")
        worker.model_layers = len(decoder_layers(predictor.vlm.model))
        return predictor

    start_openmp()
    worker = ModelWorker(make_predictor, max_waiting=max_waiting)
    worker.start()
    return worker


def start_openmp() -> None:
    """Run one parallel op on the calling (main) thread before the worker's.

    Measured on 2 cores: with OpenMP never entered on the main thread, nano's region prompt on the
    800x800 example took 10-23 s on the worker thread instead of 1.7-2.3 s (a 4K pixel prompt 40 s
    instead of 5 s); one matrix product here, before or after the model loads, restores the speed.
    """
    torch.ones(512, 512) @ torch.ones(512, 512)
