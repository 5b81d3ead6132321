"""``soundstage app`` as a process: it serves on loopback, and SIGTERM stops it and removes its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_app_load import AppServer

from tests.sample.tiny_models import save_generation_folder

pytestmark = pytest.mark.slow


def test_sigterm_stops_the_app_and_removes_its_folder(tmp_path: Path) -> None:
    server = AppServer(str(save_generation_folder(tmp_path / "model")), log=tmp_path / "log.txt").start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert (server.workspace / "clips").is_dir() and (server.workspace / "gradio").is_dir()
    finally:
        code = server.stop()
    assert code == 0
    assert not server.workspace.exists()
