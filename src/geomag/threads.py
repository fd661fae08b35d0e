"""How many threads torch, OpenMP and BLAS use in a GeoMag process: decided here, and only here.

Why one place: every process that runs the model (`geomag parse`, `geomag serve`, the local batch
engine, each Ray worker) used torch's default of one thread per core. Two processes on two cores
then run four spinning OpenMP threads, and one process on a machine whose cores are busy waits at
every parallel region for a thread the OS has not scheduled: on the shared 2-core machine a local
batch job took 9.3 s at 2 threads and 1.06 s at 1 (issue 33; docs/performance.md).

The rule (`plan_threads`): threads per process = the cores this process may use
(`os.sched_getaffinity`) less the load other processes already put on them (the 1-minute load
average, read once when the process starts, before it adds its own), divided among the processes
of the engine (local: 1, Ray: its workers), at least 1. Ray worker tasks get 1 thread each unless
told (their `cpus_per_worker`). Overrides, first that is set wins: `--threads N` (the `geomag`
flag), `$GEOMAG_THREADS`, then a user's own `$OMP_NUM_THREADS`.

`use_threads(n)` applies a count: it sets OMP / MKL / OpenBLAS environment variables (read when
those libraries start, so a process that has not imported torch yet gets them for every thread,
the server's worker thread included) and `torch.set_num_threads` when torch is already loaded.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from geomag.errors import GeoMagError

ENV = "GEOMAG_THREADS"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
APPLIED = "GEOMAG_THREADS_APPLIED"  # what `use_threads` set, so it is not mistaken for a user's choice
THREADS_HELP = (
    "torch / OpenMP / BLAS threads of this process (default: the free cores, split among the "
    f"engine's workers; also ${ENV})"
)


@dataclass(frozen=True)
class ThreadPlan:
    """A thread count and where it came from (for the timings record and `--verbose`)."""

    threads: int
    source: str  # "flag" | "GEOMAG_THREADS" | "OMP_NUM_THREADS" | "rule"


def available_cores() -> int:
    """Cores this process may run on (its affinity mask; os.cpu_count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> float:
    """Cores other processes keep busy: the 1-minute load average (0 where the OS has none)."""
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def _positive(text: str | None, name: str) -> int | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise GeoMagError(f"{name} must be a whole number of threads, at least 1, not {text!r}")
    return value


def plan_threads(
    requested: int | None = None,
    workers: int = 1,
    cores: int | None = None,
    busy: float | None = None,
    environ: dict[str, str] | None = None,
) -> ThreadPlan:
    """The threads of each of `workers` processes sharing this machine (see the module docstring).
    `cores` and `busy` default to this machine's; `environ` to os.environ."""
    env = os.environ if environ is None else environ
    if requested is not None:
        return ThreadPlan(_positive(str(requested), "--threads") or 1, "flag")
    value = _positive(env.get(ENV), f"${ENV}")
    if value is not None:
        return ThreadPlan(value, ENV)
    # a user's OMP_NUM_THREADS, not the one `use_threads` set in this process or its parent
    omp = env.get("OMP_NUM_THREADS")
    if omp is not None and omp != env.get(APPLIED):
        value = _positive(omp, "$OMP_NUM_THREADS")
        if value is not None:
            return ThreadPlan(value, "OMP_NUM_THREADS")
    cores = available_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    free = max(1, int(cores - busy + 0.5))  # rounded: a load of 0.4 on one core leaves it free
    return ThreadPlan(max(1, free // max(1, workers)), "rule")


def use_threads(threads: int, explicit: bool = False) -> None:
    """Make this process use `threads` threads: the environment for libraries not started yet (and
    for child processes), torch's intra-op pool when torch is already imported. `explicit` (a flag
    or $GEOMAG_THREADS chose it): child processes and Ray workers keep it too."""
    for name in (*THREAD_VARIABLES, APPLIED, *((ENV,) if explicit else ())):
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)


def configure_threads(requested: int | None = None, workers: int = 1) -> ThreadPlan:
    """`plan_threads` then `use_threads`: what the CLI, the server and the batch engines call."""
    plan = plan_threads(requested, workers)
    use_threads(plan.threads, explicit=plan.source in ("flag", ENV))
    return plan


def worker_threads(cpus_per_worker: float) -> int:
    """Threads of one Ray worker task: the explicit choice ($GEOMAG_THREADS, which `--threads` sets),
    else the CPUs Ray reserves for it (1 by default), never fewer than 1."""
    explicit = _positive(os.environ.get(ENV), f"${ENV}")
    return explicit if explicit is not None else max(1, int(cpus_per_worker))
