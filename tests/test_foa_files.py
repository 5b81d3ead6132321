"""``soundstage foa`` file tools through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundstage.cli import main
from soundstage.common.audio import load_audio, save_audio
from soundstage.foa import broadband_doa, encode_mono
from soundstage.foa_files import analyze_foa_file

SR = 16000


@pytest.fixture
def left_file(tmp_path: Path) -> Path:
    signal = 0.2 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    path = tmp_path / "left.flac"
    save_audio(path, encode_mono(signal, 90.0, 20.0), SR)
    return path


def test_analyze_reports_the_encoded_direction_and_plots(left_file: Path, tmp_path: Path) -> None:
    result = analyze_foa_file(left_file, plot=tmp_path / "map.png")
    assert abs(result["azimuth_deg"] - 90) < 1 and abs(result["elevation_deg"] - 20) < 1
    assert result["diffuseness"] < 0.01 and (tmp_path / "map.png").stat().st_size > 10_000


def test_rotate_and_fuma_round_trip_via_cli(left_file: Path, tmp_path: Path) -> None:
    assert main(["foa", "rotate", str(left_file), "--yaw", "-90", "--out", str(tmp_path / "front.wav")]) == 0
    az, el = broadband_doa(load_audio(tmp_path / "front.wav")[0])
    assert abs(float(az)) < 1 and abs(float(el) - 20) < 1
    assert main(["foa", "convert", str(left_file), "--to", "fuma", "--out", str(tmp_path / "f.wav")]) == 0
    assert main(["foa", "convert", str(tmp_path / "f.wav"), "--to", "ambix", "--out", str(tmp_path / "a.wav")]) == 0
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav")[0], load_audio(left_file)[0], atol=1e-4)


def test_preview_is_stereo_and_non_foa_input_is_a_clear_error(left_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["foa", "preview", str(left_file), "--out", str(tmp_path / "p.wav")]) == 0
    preview, _ = load_audio(tmp_path / "p.wav")
    assert preview.shape[0] == 2 and np.sqrt((preview[0] ** 2).mean()) > 2 * np.sqrt((preview[1] ** 2).mean())
    assert main(["foa", "analyze", str(tmp_path / "p.wav")]) == 2
    assert "expected 4-channel first-order ambisonics" in capsys.readouterr().err
