"""Audio I/O: bad files give specific errors; writes are atomic; resampling keeps length and pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundstage.common.audio import AudioError, check_output_path, load_audio, resample, save_audio


def test_round_trip_and_resample(tmp_path: Path) -> None:
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    save_audio(tmp_path / "a.flac", np.stack([tone, -tone]), 22050)
    audio, sr = load_audio(tmp_path / "a.flac", sample_rate=24000, mono=True)
    assert sr == 24000 and audio.shape == (1, 24000)
    assert np.abs(audio).max() < 1e-3  # the two channels cancel in the mono mix
    spectrum = np.abs(np.fft.rfft(resample(tone, 22050, 24000)))
    assert abs(np.argmax(spectrum) * 24000 / 24000 - 440) <= 1  # 1-s signal: bin k is k Hz


def _write(tmp_path: Path, name: str, samples: np.ndarray | bytes | None) -> Path:
    """A file (or, for ``None``, a folder) named ``name`` holding ``samples`` as 16 kHz float WAV or raw bytes."""
    path = tmp_path / name
    if samples is None:
        path.mkdir()
    elif isinstance(samples, bytes):
        path.write_bytes(samples)
    else:
        save_audio(path, samples, 16000, subtype="FLOAT")
    return path


TONE = np.full((4, 1000), 0.1, np.float32)
BAD_FILES = {  # name: (content, load_audio options, message); None content = a folder, missing = never written
    "missing": ("missing", {}, "no such file"),
    "folder": (None, {}, "is a directory, not an audio file"),
    "junk": (b"RIFF not really a wave file", {}, "not an audio file soundfile can read"),
    "empty": (b"", {}, "not an audio file soundfile can read"),
    "stereo": (np.zeros((2, 10), np.float32) + 0.1, {"channels": 4},
               r"expected 4-channel first-order ambisonics \(AmbiX W, Y, Z, X\), found 2 channel"),
    "mono": (np.zeros((1, 10), np.float32) + 0.1, {"channels": 2}, "expected 2 channel.*found 1 channel"),
    "short": (TONE[:, :10], {"min_samples": 512}, r"too short: 10 samples \(0.6 ms\); at least 512 samples"),
    "nan": (np.full((1, 10), np.nan, np.float32), {}, "NaN or Inf"),
    "inf": (np.full((1, 10), np.inf, np.float32), {}, "NaN or Inf"),
    "silent": (np.zeros((4, 1000), np.float32), {"silence": "error"}, "silent .*no sound to analyse"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_raise_errors_naming_the_file(tmp_path: Path, case: str) -> None:
    content, options, message = BAD_FILES[case]
    path = tmp_path / f"{case}.wav" if isinstance(content, str) else _write(tmp_path, f"{case}.wav", content)
    with pytest.raises(AudioError, match=message) as error:
        load_audio(path, **options)
    assert str(error.value).startswith(f"{path}: ")
    assert not list(tmp_path.glob("*.part"))  # atomic writes leave no temporary files behind


def test_silence_is_allowed_warned_or_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, "silent.wav", np.zeros((4, 1000), np.float32))
    assert load_audio(path)[0].shape == (4, 1000) and not caplog.records
    assert load_audio(path, silence="warn")[0].shape == (4, 1000)
    assert f"{path}: silent" in caplog.text
    assert load_audio(_write(tmp_path, "tone.wav", TONE), silence="error", min_samples=1000)[0].shape == (4, 1000)


@pytest.mark.parametrize(("name", "suffixes", "message"), [
    ("out.txt", (".wav", ".flac"), "unsupported output format '.txt': use .wav or .flac"),
    ("out", (".wav", ".flac"), "unsupported output format '(no suffix)'"),
    ("map.jpg", (".png",), "unsupported output format '.jpg': use .png"),
    ("folder.wav", (".wav", ".flac"), "is a directory; give a file name ending in .wav or .flac"),
])
def test_output_paths_are_checked(tmp_path: Path, name: str, suffixes: tuple[str, ...], message: str) -> None:
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_output_path(tmp_path / name, suffixes)
    assert check_output_path(tmp_path / "ok.FLAC") == tmp_path / "ok.FLAC"
