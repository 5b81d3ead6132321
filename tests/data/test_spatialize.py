"""Corpus spatialisation on a tiny synthetic mono corpus: manifest keys, bad files, splits, resuming, shards."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundstage.cli import main
from soundstage.common.errors import UsageError
from soundstage.data import spatialize
from soundstage.data.captions import direction_word
from soundstage.data.manifest import COMMON_KEYS, SPATIAL_KEYS, SPLITS, read_manifest
from soundstage.data.rooms import room_split_assignment
from soundstage.data.settings import SettingsError
from soundstage.data.spatialize import (
    PEAK_LIMIT,
    SourceClip,
    clip_split,
    fit_length,
    normalize_loudness,
    spatialize_corpus,
    trim_silence,
)
from tests.processes import group_processes, kill_group, needs_proc, start, wait_for

SR = 8000
GOOD_CLIPS = 8
SETTINGS = {"per_clip": 2, "sample_rate": SR, "seed": 3, "bank_size": 6, "progress": False, "min_seconds": 0.5,
            "max_seconds": 1.5}


def _tone(rng: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    burst = np.sin(2 * np.pi * rng.uniform(200, 1500) * t) * np.exp(-4.0 * (t % 0.5))
    noisy = 0.4 * burst + 0.05 * rng.standard_normal(t.size)
    pad = np.zeros(int(0.2 * sample_rate))  # leading and trailing silence, to be trimmed
    return np.concatenate([pad, noisy, pad]).astype(np.float32)


def _record(path: str, sample_rate: int = 16000, frames: int = 16000, **extra: object) -> dict:
    return {"path": path, "sample_rate": sample_rate, "num_frames": frames, "caption": f"a sound from {path}",
            "source": "synthetic", "licence": "CC0", **extra}


def make_corpus(folder: Path) -> Path:
    """8 good clips (several rates, one stereo, lengths 0.2-3 s) + corrupt, empty, silent, NaN, missing, bad lines."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(GOOD_CLIPS):
        rate = (8000, 16000, 22050, 44100)[i % 4]
        audio = _tone(rng, rate, (0.2, 0.7, 1.2, 3.0)[i % 4])
        if i == 5:
            audio = np.stack([audio, 0.5 * audio], axis=1)
        sf.write(folder / f"clip{i}.flac", audio, rate)
        lines.append(json.dumps(_record(f"clip{i}.flac", rate, len(audio), **{"class": ("bang", "hum")[i % 2]})))
    (folder / "corrupt.flac").write_bytes(b"fLaC but not really" * 20)
    sf.write(folder / "empty.wav", np.zeros((0,), dtype=np.float32), 16000)
    sf.write(folder / "silent.flac", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(folder / "nan.wav", np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    for name in ("corrupt.flac", "empty.wav", "silent.flac", "nan.wav", "missing.flac"):
        lines.append(json.dumps(_record(name)))
    lines.append("{this is not json")
    lines.append(json.dumps({"path": "no_caption.flac", "sample_rate": 16000, "num_frames": 10}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("mono"))


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, spatialize.SpatializeReport]:
    out = tmp_path_factory.mktemp("foa_ref")
    return out, spatialize_corpus(corpus, out, workers=1, **SETTINGS)


def _snapshot(folder: Path) -> tuple[str, dict[str, np.ndarray]]:
    manifest = (folder / "manifest.jsonl").read_text()
    audio = {r["path"]: sf.read(folder / r["path"], dtype="float32")[0] for r in read_manifest(folder)}
    return manifest, audio


def _assert_same_dataset(a: Path, b: Path) -> None:
    manifest_a, audio_a = _snapshot(a)
    manifest_b, audio_b = _snapshot(b)
    assert manifest_a == manifest_b
    assert audio_a.keys() == audio_b.keys()
    for key in audio_a:
        np.testing.assert_array_equal(audio_a[key], audio_b[key])
    assert (a / "skipped.jsonl").read_text() == (b / "skipped.jsonl").read_text()


def test_manifest_has_design_keys_and_valid_audio(reference: tuple[Path, spatialize.SpatializeReport]) -> None:
    out, report = reference
    records = read_manifest(out, spatial=True)  # validates keys, types and attribute ranges
    assert report.complete and report.records == len(records) == GOOD_CLIPS * 2
    assert report.processed == GOOD_CLIPS and report.written == GOOD_CLIPS * 2
    for record in records:
        assert set(COMMON_KEYS + SPATIAL_KEYS + ("class", "drr_db", "room_id", "source_clip")) <= set(record)
        info = sf.info(str(out / record["path"]))
        assert (info.channels, info.samplerate, info.frames) == (4, SR, record["num_frames"])
        foa, _ = sf.read(out / record["path"], dtype="float32")
        assert np.abs(foa).max() <= PEAK_LIMIT + 1e-3
        assert record["num_frames"] >= 0.5 * SR  # repeated to the minimum length (plus the reverb tail)
        assert direction_word(record["azimuth_deg"]) in record["spatial_caption"].lower()
        assert record["caption"] == f"a sound from {record['source_clip']}"
    by_clip: dict[str, list[str]] = {}
    for record in records:
        if record["split"] == "train":  # the 6-room bank has 4 train rooms, but 1 valid and 1 test room
            by_clip.setdefault(record["source_clip"], []).append(record["room_id"])
    assert by_clip and all(len(set(rooms)) == 2 for rooms in by_clip.values())
    assert "spatialized 8 source clips" in report.summary()


def test_bad_files_and_lines_are_skipped_and_logged(reference: tuple[Path, spatialize.SpatializeReport]) -> None:
    out, report = reference
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {entry["path"]: entry["reason"] for entry in skipped}
    assert reasons == {"corrupt.flac": "unreadable", "empty.wav": "empty", "silent.flac": "silent",
                       "nan.wav": "non_finite", "missing.flac": "unreadable", None: "bad manifest record",
                       "no_caption.flac": "bad manifest record"}
    assert report.skipped == 7 and report.skip_reasons["bad manifest record"] == 2
    assert not list((out / "audio").glob("corrupt*")) and not list((out / "audio").glob("silent*"))


def test_no_source_clip_or_room_crosses_splits(reference: tuple[Path, spatialize.SpatializeReport]) -> None:
    out, _ = reference
    records = read_manifest(out)
    for key in ("source_clip", "room_id"):
        owner: dict[str, str] = {}
        for record in records:
            assert owner.setdefault(record[key], record["split"]) == record["split"], key
    for record in records:
        assert record["split"] == clip_split(record["source_clip"])


def test_room_choice_respects_splits_over_many_clips() -> None:
    """1000 clip ids: the split shares are ~80/10/10 and every chosen room belongs to the clip's split."""
    room_splits = room_split_assignment(50, seed=0)
    pools = {s: [i for i, r in enumerate(room_splits) if r == s] for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    for n in range(1000):
        source = SourceClip(order=n, line=n + 1, record={"path": f"audio/clip_{n}.flac"})
        split = clip_split(source.clip_id)
        counts[split] += 1
        rooms = spatialize._choose_rooms(source, pools[split], per_clip=3, seed=0)
        assert len(set(rooms)) == 3 and all(room_splits[r] == split for r in rooms)
    assert 750 < counts["train"] < 850 and 60 < counts["valid"] < 140 and 60 < counts["test"] < 140


def test_interrupted_run_resumes_to_identical_output(
    corpus: Path, reference: tuple[Path, spatialize.SpatializeReport], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = spatialize.process_clip
    calls = {"n": 0}

    def crash_after_three(job: spatialize.ClipJob) -> dict:
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        calls["n"] += 1
        return real(job)

    monkeypatch.setattr(spatialize, "process_clip", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        spatialize_corpus(corpus, tmp_path, workers=1, **SETTINGS)
    assert not (tmp_path / "manifest.jsonl").exists()
    assert len(list((tmp_path / "records").glob("*.json"))) == 3
    monkeypatch.setattr(spatialize, "process_clip", real)
    report = spatialize_corpus(corpus, tmp_path, workers=1, **SETTINGS)
    assert report.reused == 3 and report.complete
    _assert_same_dataset(reference[0], tmp_path)


def test_rerun_reuses_everything(corpus: Path, reference: tuple[Path, spatialize.SpatializeReport],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out, first = reference
    before = (out / "manifest.jsonl").read_text()

    def fail(job: spatialize.ClipJob) -> dict:
        raise AssertionError("a finished clip was processed again")

    monkeypatch.setattr(spatialize, "process_clip", fail)
    report = spatialize_corpus(corpus, out, workers=1, **SETTINGS)
    assert report.processed == 0 and report.reused == first.shard_clips
    assert (out / "manifest.jsonl").read_text() == before


def test_shards_in_parallel_workers_assemble_the_same_dataset(
    corpus: Path, reference: tuple[Path, spatialize.SpatializeReport], tmp_path: Path
) -> None:
    first = spatialize_corpus(corpus, tmp_path, workers=2, shard=0, num_shards=2, **SETTINGS)
    assert not first.complete and first.manifest_path is None and not (tmp_path / "manifest.jsonl").exists()
    assert (tmp_path / "parts" / "part-000-of-002.jsonl").exists()
    second = spatialize_corpus(corpus, tmp_path, workers=2, shard=1, num_shards=2, **SETTINGS)
    assert second.complete and first.shard_clips + second.shard_clips == first.sources
    _assert_same_dataset(reference[0], tmp_path)


def test_dataset_statistics_are_written(reference: tuple[Path, spatialize.SpatializeReport]) -> None:
    out, _ = reference
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["per_split"].values()) == stats["clips"] == GOOD_CLIPS * 2
    assert sum(stats["histograms"]["azimuth_deg"]["counts"]) == stats["clips"]
    assert set(stats["per_class"]) == {"bang", "hum"}
    assert (out / "stats.png").stat().st_size > 1000


def test_invalid_arguments_are_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="shard"):
        spatialize_corpus(corpus, tmp_path, shard=2, num_shards=2)
    with pytest.raises(UsageError, match="per_clip"):
        spatialize_corpus(corpus, tmp_path, per_clip=0)


@pytest.mark.parametrize("sample_rate", [7, 4000, 192000])
def test_unsupported_sample_rate_is_refused_before_anything_is_written(corpus: Path, tmp_path: Path,
                                                                      sample_rate: int) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=f"sample rate {sample_rate} Hz is outside the 8000-96000 Hz"):
        spatialize_corpus(corpus, out, **{**SETTINGS, "sample_rate": sample_rate})
    assert not out.exists()


def test_command_line_unsupported_sample_rate_is_one_line(corpus: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["data", "spatialize", "--in", str(corpus), "--out", str(out), "--sample-rate", "7"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "sample rate 7 Hz is outside the 8000-96000 Hz" in err
    assert not out.exists()


def _files(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize(("change", "named"), [({"per_clip": 3}, "per_clip 2 (now 3)"),
                                               ({"seed": 4}, "seed 3 (now 4)"),
                                               ({"sample_rate": 16000}, "sample_rate 8000 (now 16000)")])
def test_resume_with_other_settings_is_refused_and_changes_nothing(
    corpus: Path, reference: tuple[Path, spatialize.SpatializeReport], change: dict, named: str
) -> None:
    out, _ = reference
    before = _files(out)
    with pytest.raises(SettingsError, match=re.escape(f"holds an FOA dataset made with {named}; run again with the same")):
        spatialize_corpus(corpus, out, workers=1, **{**SETTINGS, **change})
    assert _files(out) == before


def test_folder_without_recorded_settings_takes_per_clip_from_its_clips(
    corpus: Path, reference: tuple[Path, spatialize.SpatializeReport], tmp_path: Path
) -> None:
    """A dataset made before settings were recorded: its finished clips' version count is its per_clip."""
    out = tmp_path / "old"
    shutil.copytree(reference[0], out)
    (out / spatialize.SETTINGS_NAME).unlink()
    with pytest.raises(SettingsError, match=r"per_clip 2 \(now 3\)"):
        spatialize_corpus(corpus, out, workers=1, **{**SETTINGS, "per_clip": 3})
    assert not (out / spatialize.SETTINGS_NAME).exists()
    report = spatialize_corpus(corpus, out, workers=1, **SETTINGS)
    assert report.processed == 0 and json.loads((out / spatialize.SETTINGS_NAME).read_text())["per_clip"] == 2


def test_trim_silence_keeps_the_sound_and_a_margin() -> None:
    audio = np.zeros(SR * 2, dtype=np.float32)
    audio[SR // 2 : SR] = 0.5
    trimmed = trim_silence(audio, SR)
    assert SR // 2 <= trimmed.size <= SR // 2 + int(0.04 * SR)
    assert np.count_nonzero(trimmed) == SR // 2


def test_fit_length_repeats_short_and_crops_long_clips() -> None:
    rng = np.random.default_rng(0)
    short = np.arange(300, dtype=np.float32)
    repeated = fit_length(short, 1000, rng, min_seconds=1.0, max_seconds=5.0)
    assert repeated.size == 1200 and np.array_equal(repeated[300:600], short)
    cropped = fit_length(np.ones(8000, dtype=np.float32), 1000, rng, min_seconds=1.0, max_seconds=5.0)
    assert cropped.size == 5000 and cropped[0] == 0.0 and cropped[2500] == 1.0


def test_normalize_loudness_limits_peaks() -> None:
    foa = np.zeros((4, 1000), dtype=np.float32)
    foa[:, 10] = [4.0, 1.0, 0.0, -4.5]
    scaled, gain_db = normalize_loudness(foa)
    assert np.abs(scaled).max() == pytest.approx(PEAK_LIMIT) and gain_db == pytest.approx(20 * math.log10(0.2))


# ----------------------------------------------------------------------------------------------------------------
# Interruption of the real command: process-table tests
# ----------------------------------------------------------------------------------------------------------------

# `soundstage data spatialize --workers 2` with the test's small settings; every room and clip job sleeps after its
# work, so that jobs are still queued and running when the test interrupts.
_SLOW_COMMAND = """
import functools, sys, time
from soundstage.cli import main
from soundstage.data import rooms, spatialize

in_dir, out_dir, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
real_build, real_clip = rooms._build_one, spatialize.process_clip

def slow_build(*args):
    result = real_build(*args)
    time.sleep(delay)
    return result

def slow_clip(job):
    result = real_clip(job)
    time.sleep(delay)
    return result

rooms._build_one, spatialize.process_clip = slow_build, slow_clip
spatialize.spatialize_corpus = functools.partial(spatialize.spatialize_corpus, bank_size=6, min_seconds=0.5,
                                                 max_seconds=1.5)
sys.exit(main(["data", "spatialize", "--in", in_dir, "--out", out_dir, "--workers", "2", "--per-clip", "2",
               "--sample-rate", "8000", "--seed", "3"]))
"""


@needs_proc
@pytest.mark.slow
def test_ctrl_c_stops_workers_at_once_and_keeps_finished_work(
    corpus: Path, reference: tuple[Path, spatialize.SpatializeReport], tmp_path: Path
) -> None:
    """SIGINT to the process group while rooms are simulated: exit 130 with one line before a busy worker would have
    finished its room (each takes 8 s more here), no process left, finished responses kept, and a resumed run gives
    the reference dataset."""
    out = tmp_path / "out"
    proc = start(_SLOW_COMMAND, str(corpus), str(out), "8.0")
    try:
        assert wait_for(lambda: any((out / "rir_bank" / "responses").glob("*.json")), timeout=60)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=6)
        assert proc.returncode == 130 and err.rstrip().endswith("soundstage: interrupted")
        assert "Traceback" not in err
        assert wait_for(lambda: not group_processes(proc.pid), timeout=10), group_processes(proc.pid)
    finally:
        kill_group(proc.pid)
    finished = sorted((out / "rir_bank" / "responses").glob("*.json"))
    assert 1 <= len(finished) < 6
    stamps = [path.stat().st_mtime_ns for path in finished]
    report = spatialize_corpus(corpus, out, workers=2, **SETTINGS)
    assert report.complete and [path.stat().st_mtime_ns for path in finished] == stamps
    _assert_same_dataset(reference[0], out)


@needs_proc
@pytest.mark.slow
def test_kill_9_of_the_command_leaves_no_worker(
    corpus: Path, reference: tuple[Path, spatialize.SpatializeReport], tmp_path: Path
) -> None:
    """kill -9 of the main process while clips are spatialised: its workers are gone within 10 s; resume completes."""
    out = tmp_path / "out"
    proc = start(_SLOW_COMMAND, str(corpus), str(out), "1.0")
    try:
        assert wait_for(lambda: any((out / "records").glob("*.json")), timeout=60)
        assert len(group_processes(proc.pid)) == 3  # the command and its two workers
        proc.kill()
        proc.wait(timeout=10)
        assert wait_for(lambda: not group_processes(proc.pid), timeout=10), group_processes(proc.pid)
    finally:
        kill_group(proc.pid)
    assert not (out / "manifest.jsonl").exists()
    assert spatialize_corpus(corpus, out, workers=2, **SETTINGS).complete
    _assert_same_dataset(reference[0], out)
