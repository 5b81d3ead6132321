"""Worker processes that die with their parent and stop on Ctrl-C.

Two guarantees for every pool a command starts: a worker never outlives its parent (``kill -9`` of the command
leaves no orphan: the kernel kills the worker, Linux ``PR_SET_PDEATHSIG``), and Ctrl-C stops the command at once:
workers ignore SIGINT (a Ctrl-C reaches the whole process group), the parent cancels the queued jobs, kills the
running ones and re-raises ``KeyboardInterrupt``. Jobs must therefore write their results atomically: a killed job
leaves nothing that looks finished, and finished ones stay for a resumed run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

R = TypeVar("R")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_JOIN_TIMEOUT_S = 1.0  # a killed worker is gone well within this


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing happens).

    Args:
        parent_pid: the parent's pid when known; if it is no longer our parent, it died before the request took
            effect, and this process exits at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def pool_worker_init(parent_pid: int) -> None:
    """Initializer of pool workers: Ctrl-C is the parent's to handle, and the worker dies with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def loader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of torch data loaders: the worker dies with the training process.

    torch's own watchdog notices a dead parent only every 5 s and after the batch in hand; SIGINT is left to torch,
    whose workers exit quietly on it.
    """
    die_with_parent()


def imap_unordered(fn: Callable[..., R], jobs: Sequence[tuple[Any, ...]], workers: int) -> Iterator[R]:
    """Yield ``fn(*job)`` for every job as it finishes, in ``workers`` processes (in this process for ``workers <= 1``).

    On any exception (a job's, or ``KeyboardInterrupt``) and when the caller stops iterating, the queued jobs are
    cancelled and the running ones killed before the exception propagates: nothing runs on after this returns.
    """
    if workers <= 1:
        for job in jobs:
            yield fn(*job)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=pool_worker_init, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(fn, *job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown()


_hook_before_quiet: Callable[[threading.ExceptHookArgs], Any] = threading.excepthook


def _quiet_feeder_errors(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook`` that drops an OSError in a multiprocessing queue's feeder thread and passes anything
    else to the hook it replaced. Killing a pool's workers can close the pipe that thread is writing a cancelled job
    to ("Bad file descriptor"); that traceback would follow the one-line interrupt message."""
    if isinstance(args.exc_value, OSError) and args.thread is not None and args.thread.name == "QueueFeederThread":
        return
    _hook_before_quiet(args)


def _install_quiet_feeder_errors() -> None:
    global _hook_before_quiet
    if threading.excepthook is not _quiet_feeder_errors:
        _hook_before_quiet = threading.excepthook
        threading.excepthook = _quiet_feeder_errors


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel the pool's queued jobs and kill its workers now, without waiting for the running jobs."""
    _install_quiet_feeder_errors()  # the feeder thread may still be writing to the workers: see there
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public way before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(_JOIN_TIMEOUT_S)
