"""benchmarks/codec_valid_curves.py: validation records of a run's log become a table by step and a figure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def script() -> Iterator[object]:
    with benchmark_module("codec_valid_curves") as module:
        yield module


def _run(folder: Path, records: list[dict]) -> Path:
    folder.mkdir()
    (folder / "train_config.json").write_text(json.dumps({"max_steps": 1000, "batch_size": 8}))
    (folder / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_validation_records_become_a_table_by_step_and_a_figure(script, tmp_path: Path) -> None:
    run = _run(tmp_path / "run", [
        {"step": 25, "loss": 3.0},
        {"step": 500, "valid": {"w_band_error_median_db": 5.123456, "angle_error_median_deg": 2.5}},
        {"step": 1000, "valid": {"w_band_error_median_db": 3.0, "angle_error_median_deg": 2.0}},
    ])
    reference = tmp_path / "v2.json"
    reference.write_text(json.dumps({"valid_by_step": {"500": {"w_band_error_median_db": 6.0}}}))
    out = tmp_path / "out" / "valid_by_step.json"
    script.main(["--run", str(run), "--reference", f"v2={reference}", "--out", str(out)])
    table = json.loads(out.read_text())
    assert table["valid_by_step"] == {"500": {"w_band_error_median_db": 5.1235, "angle_error_median_deg": 2.5},
                                      "1000": {"w_band_error_median_db": 3.0, "angle_error_median_deg": 2.0}}
    assert table["train_config"]["max_steps"] == 1000
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_a_run_without_validation_records_and_a_bad_reference_are_refused(script, tmp_path: Path) -> None:
    run = _run(tmp_path / "run", [{"step": 25, "loss": 3.0}])
    with pytest.raises(SystemExit, match="holds no validation record"):
        script.main(["--run", str(run), "--out", str(tmp_path / "x.json")])
    good = _run(tmp_path / "good", [{"step": 500, "valid": {"stft_loss": 1.0}}])
    with pytest.raises(SystemExit, match="LABEL=JSON"):
        script.main(["--run", str(good), "--reference", "no-equals-sign", "--out", str(tmp_path / "y.json")])
