"""One place sets the threads of torch / OpenMP / BLAS (`geomag.threads`): the rule, its overrides,
and that the CLI applies it before a command runs."""

from __future__ import annotations

import os

import pytest
import torch

from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.threads import APPLIED, ENV, THREAD_VARIABLES, plan_threads, use_threads, worker_threads


@pytest.fixture
def restored(monkeypatch):
    """Environment and torch's thread count as they were, after the test."""
    for name in (*THREAD_VARIABLES, APPLIED, ENV):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("cores", "busy", "workers", "want"),
    [
        (2, 0.0, 1, 2),  # an idle laptop: every core
        (2, 0.3, 1, 2),  # a little background load leaves both cores
        (2, 1.6, 1, 1),  # a busy core is not counted
        (2, 7.9, 1, 1),  # the shared machine under load: one thread, never zero
        (2, 0.0, 2, 1),  # two workers share the two cores
        (8, 0.0, 3, 2),  # workers x threads <= cores
        (16, 4.0, 4, 3),
    ],
)
def test_rule_splits_the_free_cores_among_the_workers(cores, busy, workers, want):
    plan = plan_threads(cores=cores, busy=busy, workers=workers, environ={})
    assert (plan.threads, plan.source) == (want, "rule")
    assert plan.threads * workers <= max(cores, workers)


def test_flag_then_geomag_threads_then_a_users_omp_num_threads():
    env = {ENV: "3", "OMP_NUM_THREADS": "5"}
    assert plan_threads(2, cores=2, busy=0, environ=env) == plan_threads(2, environ={})
    assert plan_threads(2, environ=env).source == "flag"
    assert (plan_threads(environ=env).threads, plan_threads(environ=env).source) == (3, ENV)
    user = plan_threads(cores=2, busy=0, environ={"OMP_NUM_THREADS": "5"})
    assert (user.threads, user.source) == (5, "OMP_NUM_THREADS")
    # the OMP_NUM_THREADS GeoMag itself set (here or in a parent process) is not a user's choice
    ours = plan_threads(cores=2, busy=0, environ={"OMP_NUM_THREADS": "1", APPLIED: "1"})
    assert (ours.threads, ours.source) == (2, "rule")


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_count_is_one_clear_error(bad):
    with pytest.raises(GeoMagError, match=rf"\${ENV} must be a whole number of threads"):
        plan_threads(environ={ENV: bad})


def test_use_threads_sets_the_libraries_and_torch(restored):
    use_threads(1)
    assert torch.get_num_threads() == 1
    assert all(os.environ[name] == "1" for name in THREAD_VARIABLES)
    assert ENV not in os.environ  # the rule's choice: children plan their own
    use_threads(2, explicit=True)
    assert torch.get_num_threads() == 2 and os.environ[ENV] == "2"


def test_ray_workers_get_one_thread_unless_told(restored, monkeypatch):
    assert worker_threads(1.0) == 1
    assert worker_threads(0.5) == 1
    assert worker_threads(2.0) == 2
    monkeypatch.setenv(ENV, "3")
    assert worker_threads(1.0) == 3


def test_cli_applies_the_flag_before_the_command(restored, capsys):
    # `classify` without a prompt fails after the threads are set: a cheap command to check it on
    assert main(["--threads", "1", "classify"]) == 2
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ[ENV] == "1"  # explicit: Ray workers and child processes keep it
    capsys.readouterr()
    assert main(["--threads", "0", "classify", "a prompt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["geomag: error: --threads must be a whole number of threads, at least 1, not '0'"]
