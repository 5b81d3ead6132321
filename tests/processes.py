"""Process-table helpers for the interruption tests: start a command in its own process group, wait for a file, and
list the live processes of a group (from /proc, Linux)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")


COMMAND = "import sys; from soundstage.cli import main; sys.exit(main(sys.argv[1:]))"  # `soundstage ARGS...`


# A test suite started as a shell's background job (``nohup pytest &``, some CI runners) hands its children SIGINT
# ignored, and Python then raises no KeyboardInterrupt: the Ctrl-C tests would test that. The child restores it first.
SIGINT_AS_IN_A_TERMINAL = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def start(script: str, *args: str, stderr: Path | None = None) -> subprocess.Popen[str]:
    """Run ``python -c script args...`` as the leader of a new process group (its pgid is its pid), with SIGINT as a
    terminal gives it; stderr goes to a pipe or, to be read while it runs, to the file ``stderr``."""
    err = subprocess.PIPE if stderr is None else stderr.open("w")
    return subprocess.Popen([sys.executable, "-c", SIGINT_AS_IN_A_TERMINAL + script, *args], stdout=subprocess.PIPE,
                            stderr=err, text=True, start_new_session=True)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def group_processes(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def kill_group(pgid: int) -> None:
    """Clean-up after a failed test: SIGKILL whatever is left of the group."""
    try:
        os.killpg(pgid, 9)
    except ProcessLookupError:
        pass
