"""Batch generation: good rows written with their manifest, bad rows reported by line, re-runs skip what is done and\nrefuse a folder of another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from soundstage.sample import GenerationError, SoundstagePipeline, generate_batch

ROWS = [
    '{"id": "dog", "prompt": "a dog barks", "azimuth_deg": 90, "seconds": 0.5, "steps": 2, "seed": 7, "take": 3}',
    '{"prompt": "rain", "t30_s": 0.5, "seconds": 0.25, "steps": 2}',
    '{"id": "bad", "prompt": "a bell", "elevation_deg": 95, "steps": 2}',
    '{"id": "dog", "prompt": "a cat", "steps": 2}',
    "{not json",
    "",
    '{"id": "../x", "prompt": "a bell", "steps": 2}',
    '{"id": "wind", "prompt": "wind", "trajectory": "0:0:0,1:90:0", "seconds": 1, "steps": 2, "cfg_scale": 2}',
    '["a list"]',
    '{"id": "noprompt", "steps": 2}',
]


def run(pipe: SoundstagePipeline, tmp_path: Path) -> tuple:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(ROWS) + "\n")
    out = tmp_path / "out"
    return generate_batch(pipe, prompts, out, progress=False), out


def manifest(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}


def test_good_rows_written_bad_rows_reported(pipe: SoundstagePipeline, tmp_path: Path) -> None:
    report, out = run(pipe, tmp_path)
    assert (report.written, report.skipped) == (3, 0) and not report.ok
    failed = {f.line: f.reason for f in report.failed}
    assert sorted(failed) == [3, 4, 5, 7, 9, 10]
    assert "elevation_deg must be in [-90, 90]" in failed[3]
    assert "duplicate id 'dog'" in failed[4]
    assert "not valid JSON" in failed[5]
    assert "not usable as a file name" in failed[7]
    assert "expected a JSON object" in failed[9]
    assert "no 'prompt' key" in failed[10]
    records = manifest(out)
    assert sorted(records) == ["2", "dog", "wind"]  # the id defaults to the line number
    dog = records["dog"]
    assert dog["take"] == 3 and dog["seed"] == 7 and dog["azimuth_deg"] == 90.0 and dog["path"] == "dog.wav"
    assert dog["model_hash"] == pipe.model_hash and dog["mode"] == "parametric"
    assert isinstance(records["2"]["seed"], int)
    audio, rate = sf.read(out / "dog.wav", always_2d=True)
    assert audio.shape == (round(0.5 * pipe.sample_rate), 4) and rate == pipe.sample_rate
    # the manifest row reproduces its clip
    again = pipe("a dog barks", azimuth_deg=90, seconds=0.5, steps=2, seed=7, progress=False).foa[0]
    assert torch.allclose(torch.from_numpy(audio.T).float(), again, atol=1e-6)
    assert not list(out.glob("*.part"))


def test_rerun_skips_done_rows_and_redoes_a_missing_file(pipe: SoundstagePipeline, tmp_path: Path) -> None:
    run(pipe, tmp_path)
    report, out = run(pipe, tmp_path)
    assert (report.written, report.skipped, len(report.failed)) == (0, 3, 6)
    (out / "wind.wav").unlink()
    with (out / "manifest.jsonl").open("a") as handle:
        handle.write('{"id": "trunc')  # a killed writer's partial line
    report, out = run(pipe, tmp_path)
    assert (report.written, report.skipped) == (1, 2)
    assert sorted(manifest(out)) == ["2", "dog", "wind"]


def test_rerun_refuses_a_folder_of_another_model_and_keeps_its_clips(pipe: SoundstagePipeline,
                                                                     tmp_path: Path) -> None:
    _, out = run(pipe, tmp_path)
    lines = (out / "manifest.jsonl").read_text().replace(pipe.model_hash, "0123456789abcdef")
    (out / "manifest.jsonl").write_text(lines)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(GenerationError, match=r"holds 3 clips made by another model \(0123456789abcdef; this one"):
        run(pipe, tmp_path)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_unusable_files_raise(pipe: SoundstagePipeline, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="no such prompts file"):
        generate_batch(pipe, tmp_path / "missing.jsonl", tmp_path / "out")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a"}\n')
    (tmp_path / "file").write_text("")
    with pytest.raises(GenerationError, match="not a folder"):
        generate_batch(pipe, prompts, tmp_path / "file")
