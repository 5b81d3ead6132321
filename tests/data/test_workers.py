"""The pool stop's quiet hook: an OSError in a queue feeder thread is dropped, every other thread error still reaches
the hook that was there before."""

from __future__ import annotations

import threading

import pytest

from soundstage.data import workers


def test_a_feeder_threads_bad_file_descriptor_is_dropped_and_other_errors_pass_on(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append((args.thread.name, args.exc_type.__name__)))
    monkeypatch.setattr(workers, "_hook_before_quiet", workers._hook_before_quiet)  # restored after the test
    workers._install_quiet_feeder_errors()
    workers._install_quiet_feeder_errors()  # idempotent: does not wrap itself
    assert threading.excepthook is workers._quiet_feeder_errors

    def raise_in_thread(name: str, error: Exception) -> None:
        def target() -> None:
            raise error

        thread = threading.Thread(target=target, name=name)
        thread.start()
        thread.join()

    raise_in_thread("QueueFeederThread", OSError(9, "Bad file descriptor"))
    raise_in_thread("QueueFeederThread", ValueError("a real bug"))
    raise_in_thread("worker", OSError(9, "Bad file descriptor"))
    assert seen == [("QueueFeederThread", "ValueError"), ("worker", "OSError")]
