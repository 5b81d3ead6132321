"""Ctrl-C and kill -9 of `soundstage train codec --workers 2` leave no process behind (read from the process table)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.codec.synthetic import make_dataset
from tests.processes import COMMAND, group_processes, kill_group, needs_proc, start, wait_for

pytestmark = [needs_proc, pytest.mark.slow]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("foa_data"), sample_rate=8000)


def _start_training(data: Path, out: Path, stderr: Path) -> subprocess.Popen[str]:
    """Start a long tiny-codec run with two loader workers; returns its pid once it trains (3 processes)."""
    proc = start(COMMAND, "train", "codec", "--preset", "tiny", "--data", str(data), "--out", str(out),
                 "--workers", "2", "--steps", "100000", stderr=stderr)
    try:
        assert wait_for(lambda: (out / "train_log.jsonl").exists(), timeout=120), stderr.read_text()
        assert len(group_processes(proc.pid)) == 3  # the run and its two data-loader workers
    except BaseException:
        kill_group(proc.pid)
        raise
    return proc


def test_ctrl_c_stops_training_with_one_line_and_no_process_left(data: Path, tmp_path: Path) -> None:
    err = tmp_path / "stderr.txt"
    proc = _start_training(data, tmp_path / "run", err)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        assert wait_for(lambda: "soundstage: interrupted" in err.read_text(), timeout=10)
        assert wait_for(lambda: group_processes(proc.pid) in ([], [proc.pid]), timeout=10)  # the workers, before the run
        # then the interpreter's own teardown of torch (as long as a normal exit of the command takes)
        assert proc.wait(timeout=30) == 130
        assert wait_for(lambda: not group_processes(proc.pid), timeout=10), group_processes(proc.pid)
    finally:
        kill_group(proc.pid)
    text = err.read_text()
    assert text.rstrip().endswith("soundstage: interrupted") and "Traceback" not in text


def test_kill_9_of_training_leaves_no_worker(data: Path, tmp_path: Path) -> None:
    proc = _start_training(data, tmp_path / "run", tmp_path / "stderr.txt")
    try:
        proc.kill()
        proc.wait(timeout=10)
        assert wait_for(lambda: not group_processes(proc.pid), timeout=10), group_processes(proc.pid)
    finally:
        kill_group(proc.pid)
