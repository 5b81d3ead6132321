"""The CSV importer: our columns, Clotho and AudioCaps layouts, bad rows skipped with their CSV line, a clear error
for missing columns, mono conversion at the original rate, and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundstage.common.audio import load_audio
from soundstage.data.importer import CsvFormatError, import_corpus
from soundstage.data.manifest import read_manifest


def _sound(seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.exp(-3 * t) * rng.standard_normal(t.size)).astype(np.float32)


def _skipped(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    return {row["where"]: row["reason"] for row in rows}


def test_import_writes_mono_flac_manifest_with_class_and_licence(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    (audio / "dogs").mkdir(parents=True)
    left = _sound(1.0, 22050, seed=1)
    sf.write(audio / "dogs" / "bark one.wav", np.stack([left, -0.5 * left], axis=1), 22050)
    sf.write(audio / "rain.ogg", _sound(2.0, 16000, seed=2), 16000)
    (tmp_path / "captions.csv").write_text(
        "file,caption,class,licence\n"
        'dogs/bark one.wav,"a dog barks, once",Animal,CC-BY-4.0\n'
        "rain.ogg,rain falls on a roof,,\n"
    )
    report = import_corpus(tmp_path / "captions.csv", audio, tmp_path / "out", progress=False)
    records = read_manifest(tmp_path / "out")
    assert report.kept == 2 and report.num_skipped == 0
    dog, rain = records
    assert dog["path"] == "audio/dogs/bark_one.flac" and dog["caption"] == "a dog barks, once"
    assert (dog["class"], dog["licence"]) == ("animal", "CC-BY-4.0")
    assert (rain["class"], rain["licence"]) == ("unknown", "unspecified")
    assert dog["source"] == "import:captions.csv/dogs/bark one.wav"
    mono, sr = load_audio(tmp_path / "out" / dog["path"])
    assert sr == dog["sample_rate"] == 22050 and mono.shape == (1, dog["num_frames"]) == (1, 22050)
    assert np.allclose(mono[0], 0.25 * left, atol=1e-3)  # channels averaged


def test_bad_rows_are_skipped_with_their_csv_line(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "ok.wav", _sound(seed=1), 16000)
    sf.write(audio / "ok2.wav", _sound(seed=2), 16000)
    sf.write(audio / "silent.wav", np.zeros(16000, np.float32), 16000)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (audio / "empty.flac").write_bytes(b"")
    (tmp_path / "c.csv").write_text(
        "file,caption\n"  # line 1
        "ok.wav,a short noise burst\n"  # 2: kept
        "ok2.wav,   \n"  # 3: empty caption
        "nothere.wav,a sound that is not on disk\n"  # 4
        ",a row without a file\n"  # 5
        "silent.wav,nothing at all\n"  # 6
        "corrupt.wav,broken bytes\n"  # 7
        "empty.flac,an empty file\n"  # 8
    )
    report = import_corpus(tmp_path / "c.csv", audio, tmp_path / "out", progress=False)
    assert report.kept == 1
    assert _skipped(tmp_path / "out") == {
        "c.csv:3": "empty_caption",
        "c.csv:4": "missing_file",
        "c.csv:5": "missing_file",
        "c.csv:6": "silent",
        "c.csv:7": "unreadable",
        "c.csv:8": "empty",
    }
    assert report.skipped == {"empty_caption": 1, "missing_file": 2, "silent": 1, "unreadable": 1, "empty": 1}


def test_missing_required_column_names_found_and_required_columns(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("file,label\na.wav,dog\n")
    with pytest.raises(
        CsvFormatError, match=r"missing required column\(s\) \['caption'\]; found columns \['file', 'label'\]"
    ):
        import_corpus(tmp_path / "c.csv", tmp_path, tmp_path / "out", progress=False)
    (tmp_path / "d.csv").write_text("name,text\n")
    with pytest.raises(CsvFormatError, match=r"\['file', 'caption'\].*required: a file column"):
        import_corpus(tmp_path / "d.csv", tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(CsvFormatError, match="audio root is not a folder"):
        import_corpus(tmp_path / "c.csv", tmp_path / "nope", tmp_path / "out", progress=False)


def test_clotho_and_audiocaps_layouts(tmp_path: Path) -> None:
    sf.write(tmp_path / "Forest birds.wav", _sound(seed=3), 16000)
    sf.write(tmp_path / "abc123.flac", _sound(seed=4), 16000)
    (tmp_path / "clotho.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\nForest birds.wav,birds sing in a forest,b,c,d,e\n"
    )
    (tmp_path / "audiocaps.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n91139,abc123,30,a man speaks over wind\n"
    )
    import_corpus(tmp_path / "clotho.csv", tmp_path, tmp_path / "clotho", progress=False)
    import_corpus(tmp_path / "audiocaps.csv", tmp_path, tmp_path / "audiocaps", progress=False)
    assert [r["caption"] for r in read_manifest(tmp_path / "clotho")] == ["birds sing in a forest"]
    [caps] = read_manifest(tmp_path / "audiocaps")
    assert caps["caption"] == "a man speaks over wind" and caps["path"] == "audio/abc123.flac"


def test_rerun_reuses_converted_files(tmp_path: Path) -> None:
    for i in range(2):
        sf.write(tmp_path / f"{i}.wav", _sound(seed=10 + i), 16000)
    (tmp_path / "c.csv").write_text("file,caption\n0.wav,first noise\n1.wav,second noise\n")
    first = import_corpus(tmp_path / "c.csv", tmp_path, tmp_path / "out", progress=False)
    second = import_corpus(tmp_path / "c.csv", tmp_path, tmp_path / "out", progress=False)
    assert (first.reused, second.reused, second.kept) == (0, 2, 2)
