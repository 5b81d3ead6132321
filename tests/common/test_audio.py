"""Audio I/O: bad files give specific errors; writes are atomic; resampling keeps length and pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundstage.common.audio import AudioError, load_audio, resample, save_audio


def test_round_trip_and_resample(tmp_path: Path) -> None:
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    save_audio(tmp_path / "a.flac", np.stack([tone, -tone]), 22050)
    audio, sr = load_audio(tmp_path / "a.flac", sample_rate=24000, mono=True)
    assert sr == 24000 and audio.shape == (1, 24000)
    assert np.abs(audio).max() < 1e-3  # the two channels cancel in the mono mix
    spectrum = np.abs(np.fft.rfft(resample(tone, 22050, 24000)))
    assert abs(np.argmax(spectrum) * 24000 / 24000 - 440) <= 1  # 1-s signal: bin k is k Hz


def test_bad_files_raise_specific_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(tmp_path / "junk.wav")
    save_audio(tmp_path / "st.wav", np.zeros((2, 10), np.float32), 16000)
    with pytest.raises(AudioError, match="expected 4 channels, found 2"):
        load_audio(tmp_path / "st.wav", channels=4)
    save_audio(tmp_path / "nan.wav", np.full((1, 10), np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        load_audio(tmp_path / "nan.wav")
    assert not list(tmp_path.glob("*.part"))  # atomic writes leave no temporary files behind
