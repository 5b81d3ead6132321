"""Load: 8 concurrent API requests to the running app all complete, the app answers afterwards, memory stays bounded
(the functions of benchmarks/bench_app_load.py, with short clips)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_app_load import AppServer, run_load

pytestmark = pytest.mark.slow

MEMORY_BUDGET_MB = 3000  # the bundled model, gradio and eight queued requests; measured ~1.5 GB


def test_eight_concurrent_requests_all_complete(app_server: AppServer, tmp_path: Path) -> None:
    result = run_load(app_server, 8, tmp_path, seconds=2.0, steps=10)
    assert result["errors"] == [] and result["completed"] == 8
    assert len({o["seed"] for o in result["outcomes"]}) == 8
    assert result["page_status_after"] == 200 and result["request_after_s"] > 0
    assert result["peak_memory_mb"] < MEMORY_BUDGET_MB
    assert len(list((app_server.workspace / "clips").iterdir())) <= 200
