"""The SFX corpus: OpenTTD catalogue parsing, content de-duplication, bad-file skipping, resuming, the catalogue,
licences from Debian copyright files, and apt/dpkg error messages. No network, no apt: everything is synthetic."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundstage.common.audio import load_audio, resample
from soundstage.data import sfx
from soundstage.data.corpus import ClipSpec, DuplicateIndex, fingerprint, read_mono_clip, write_corpus
from soundstage.data.manifest import read_manifest
from soundstage.data.sfx import (
    SfxError,
    build_sfx_corpus,
    fetch_debs,
    licence_for,
    list_members,
    output_names,
    parse_cat,
    read_catalogue,
    read_copyright,
)

RNG = np.random.default_rng(0)


def _event(sr: int, seconds: float = 1.5, seed: int = 1) -> np.ndarray:
    """A recording-like test signal: decaying noise bursts plus a chirp, float32 in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    envelope = np.exp(-((t * 3.0) % 1.0) * 6.0)
    chirp = np.sin(2 * np.pi * (300 + 900 * t) * t)
    return (0.25 * envelope * rng.standard_normal(t.size) + 0.2 * chirp).astype(np.float32)


def _wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _cat(entries: list[tuple[str, bytes, str]]) -> bytes:
    """Build an OpenTTD .cat as parse_cat documents it: table, then [len, description, RIFF, NUL, len, name]."""
    bodies = []
    for description, wav, name in entries:
        desc = description.encode() + b"\0"
        tail = b"\0" + bytes([len(name) + 1]) + name.encode() + b"\0"
        bodies.append((bytes([len(desc)]) + desc + wav + tail, len(wav)))
    offset = 8 * len(entries)
    table, blob = b"", b""
    for body, size in bodies:
        table += struct.pack("<II", (offset + len(blob)) | 0x80000000, size)
        blob += body
    return table + blob


def _clip(path: Path, rel: str, caption: str = "a test sound", label: str = "test") -> ClipSpec:
    return ClipSpec(path, rel, caption, label, "CC0-1.0 (test)", f"test:{path.name}", "test", f"row {path.name}")


def _skips(out: Path) -> dict[str, dict]:
    return {json.loads(line)["source"]: json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()}


# ---------------------------------------------------------------------------------------------------- catalogue


def test_parse_cat_reads_descriptions_names_and_audio() -> None:
    a, b = _event(22050, 0.5, seed=1), _event(11025, 0.3, seed=2)
    data = _cat(
        [
            ('"Cow". License: CC0.', _wav_bytes(a, 22050), "src/wav/osfx_00.wav"),
            ('"Horse".', _wav_bytes(b, 11025), "src/wav/osfx_01.wav"),
        ]
    )
    entries = parse_cat(data)
    assert [e.index for e in entries] == [0, 1]
    assert [e.description for e in entries] == ['"Cow". License: CC0.', '"Horse".']
    assert [e.source_name for e in entries] == ["src/wav/osfx_00.wav", "src/wav/osfx_01.wav"]
    decoded, sr = sf.read(io.BytesIO(entries[1].wav), dtype="float32")
    assert sr == 11025 and np.allclose(decoded, b, atol=1e-4)


def test_parse_cat_rejects_broken_tables() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        parse_cat(struct.pack("<II", 0x80001000, 10))  # claims 512 entries in 8 bytes
    good = _cat([("x", _wav_bytes(_event(8000, 0.3), 8000), "a.wav")])
    with pytest.raises(ValueError, match="RIFF/WAVE"):
        parse_cat(good.replace(b"RIFF", b"JUNK"))


def test_list_members_finds_files_catalogue_entries_and_archive_members(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "snd").mkdir(parents=True)
    sf.write(root / "snd" / "dog.ogg", _event(22050, 0.5), 22050)
    (root / "snd" / "notes.txt").write_text("not audio")
    (root / "snd" / "all.cat").write_bytes(_cat([("bird", _wav_bytes(_event(16000, 0.4), 16000), "src/b.wav")]))
    with zipfile.ZipFile(root / "snd" / "pack.zip", "w") as archive:
        archive.writestr("inner/bell.wav", _wav_bytes(_event(8000, 0.5), 8000))
    with zipfile.ZipFile(root / "snd" / "pak0.pk3", "w") as archive:  # Quake-style game archive = zip
        archive.writestr("sound/horn.ogg", b"OggS-not-decoded-here")
    members = list_members(root, tmp_path / "extract")
    assert sorted(members) == [
        "snd/all.cat#00", "snd/dog.ogg", "snd/pack.zip!inner/bell.wav", "snd/pak0.pk3!sound/horn.ogg"
    ]
    assert members["snd/all.cat#00"].licence_path == "src/b.wav"
    audio, sr = load_audio(members["snd/all.cat#00"].path)
    assert sr == 16000 and audio.shape == (1, 6400)
    assert load_audio(members["snd/pack.zip!inner/bell.wav"].path)[1] == 8000


def test_shipped_catalogue_is_curated_and_valid() -> None:
    rows = read_catalogue()
    kept = [r for r in rows if r.keep]
    assert len(kept) >= 300
    assert len({r.label for r in kept}) >= 20
    assert all(r.label == r.label.lower() and r.caption == r.caption.strip() != "" for r in kept)
    assert len({r.caption for r in kept}) > 0.9 * len(kept)  # captions are written per clip, not per class
    assert {r.package for r in rows} == set(sfx.PACKAGES)
    assert all(r.note for r in rows if not r.keep)  # every exclusion says why
    assert len({r.label for r in kept}) >= 80


def test_read_catalogue_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("package,member,caption,class,keep,note\np,a.wav,a dog barks,animal,yes,\np,b.wav,x,y,maybe,\n")
    with pytest.raises(SfxError, match=r"c\.csv:3: keep must be"):
        read_catalogue(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("p,b.wav,,,no,", r"p\.csv:2: a clip left out needs a note"),
        ("p,b.wav@8-3,rain,weather,yes,", r"p\.csv:2: segment 8-3 s of 'b.wav' ends before it starts"),
        ("q,b.wav,rain,weather,yes,", r"p\.csv:2: package 'q' does not match the file's name"),
    ],
)
def test_catalogue_folder_rows_are_checked(tmp_path: Path, row: str, message: str) -> None:
    (tmp_path / "p.csv").write_text(f"package,member,caption,class,keep,note\n{row}\n")
    with pytest.raises(SfxError, match=message):
        read_catalogue(tmp_path)


def test_segments_are_parsed_and_named_apart() -> None:
    assert sfx.split_segment("a/rain.ogg@10-18.5") == ("a/rain.ogg", (10.0, 18.5))
    assert sfx.split_segment("a/mail@home.wav") == ("a/mail@home.wav", None)
    names = output_names(["amb/rain.ogg@0-8", "amb/rain.ogg@20-28", "amb/wind.ogg", "amb/grow.ogg", "amb/grow.wav"])
    assert names == {"amb/rain.ogg@0-8": "rain_0-8s", "amb/rain.ogg@20-28": "rain_20-28s", "amb/wind.ogg": "wind",
                     "amb/grow.ogg": "amb_grow_ogg", "amb/grow.wav": "amb_grow_wav"}


# ----------------------------------------------------------------------------------------------- de-duplication


def test_same_recording_in_other_format_and_rate_is_a_duplicate(tmp_path: Path) -> None:
    signal = _event(44100)
    sf.write(tmp_path / "a.wav", signal, 44100)
    sf.write(tmp_path / "a.flac", resample(signal, 44100, 22050) * 0.5, 22050)  # also quieter
    other = _event(44100, seed=7)  # same envelope, chirp and spectrum; different noise
    sf.write(tmp_path / "b.wav", other, 44100)
    (tmp_path / "b_copy.wav").write_bytes((tmp_path / "b.wav").read_bytes())  # shipped twice: an exact copy
    items = [_clip(tmp_path / n, f"audio/{n}.flac") for n in ("a.wav", "a.flac", "b.wav", "b_copy.wav")]
    report = write_corpus(items, tmp_path / "out", title="t", group_name="g", progress=False)
    assert report.kept == 2
    assert report.duplicates == [("test:a.flac", "test:a.wav"), ("test:b_copy.wav", "test:b.wav")]
    assert report.exact_duplicates == 1 and "identical samples 1, near-duplicates 1" in report.summary()
    assert _skips(tmp_path / "out")["test:a.flac"]["duplicate_of"] == "test:a.wav"
    assert _skips(tmp_path / "out")["test:b_copy.wav"]["detail"] == "identical samples"
    assert not (tmp_path / "out" / "audio" / "a.flac.flac").exists()


def test_fingerprint_ignores_leading_silence_but_not_content() -> None:
    sig = _event(16000)
    padded = np.concatenate([np.zeros(8000, np.float32), sig, np.zeros(4000, np.float32)])
    index = DuplicateIndex()
    index.add("orig", fingerprint(sig, 16000))
    assert index.find(fingerprint(padded, 16000)) == "orig"
    assert index.find(fingerprint(_event(16000, seed=3), 16000)) is None
    assert index.find(fingerprint(_event(16000, seconds=2.5), 16000)) is None


def test_two_recordings_of_steady_noise_are_not_duplicates() -> None:
    """Rain or a stream: the same spectrum over the same time, which only the waveform check can tell apart."""
    index = DuplicateIndex()
    index.add("rain", fingerprint(0.3 * RNG.standard_normal(64000).astype(np.float32), 16000))
    assert index.find(fingerprint(0.3 * RNG.standard_normal(64000).astype(np.float32), 16000)) is None


# ----------------------------------------------------------------------------------------------- bad files


def test_bad_files_are_skipped_and_logged_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "good.wav", _event(16000), 16000)
    (src / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    good = (src / "good.wav").read_bytes()
    (src / "truncated.wav").write_bytes(good[: len(good) // 2])
    (src / "empty.wav").write_bytes(b"")
    sf.write(src / "noframes.wav", np.zeros(0, np.float32), 16000)
    sf.write(src / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(src / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(src / "short.wav", _event(16000, 0.1), 16000)
    sf.write(src / "long.wav", np.full(61 * 1000, 0.1, np.float32), 1000)
    expected = {
        "corrupt.wav": "unreadable",
        "truncated.wav": "truncated",
        "empty.wav": "empty",
        "noframes.wav": "empty",
        "silent.wav": "silent",
        "nan.wav": "non_finite",
        "short.wav": "too_short",
        "long.wav": "too_long",
        "missing.wav": "missing_file",
    }
    items = [_clip(src / n, f"audio/{n}.flac") for n in ["good.wav", *expected]]
    report = write_corpus(items, tmp_path / "out", title="t", group_name="g", progress=False)
    assert report.kept == 1
    assert {s: r["reason"] for s, r in _skips(tmp_path / "out").items()} == {
        f"test:{n}": v for n, v in expected.items()
    }
    assert report.num_skipped == len(expected)
    assert [r["path"] for r in read_manifest(tmp_path / "out")] == ["audio/good.wav.flac"]


def test_multichannel_clips_are_averaged_to_mono_at_the_original_rate(tmp_path: Path) -> None:
    left = _event(22050)
    sf.write(tmp_path / "st.wav", np.stack([left, 0.5 * left], axis=1), 22050)
    mono, sr = read_mono_clip(tmp_path / "st.wav")
    assert sr == 22050 and mono.ndim == 1 and np.allclose(mono, 0.75 * left, atol=1e-4)


# --------------------------------------------------------------------------------------------------- resuming


def test_second_run_reuses_finished_files(tmp_path: Path) -> None:
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", _event(16000, seed=10 + i), 16000)
    items = [_clip(tmp_path / f"{i}.wav", f"audio/{i}.flac") for i in range(3)]
    first = write_corpus(items, tmp_path / "out", title="t", group_name="g", progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "audio").iterdir()}
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text()
    second = write_corpus(items, tmp_path / "out", title="t", group_name="g", progress=False)
    assert first.reused == 0 and second.reused == second.kept == 3
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "audio").iterdir()}
    assert (tmp_path / "out" / "manifest.jsonl").read_text() == manifest


# ------------------------------------------------------------------------------------------ licences and names


def test_licences_follow_the_last_matching_copyright_paragraph(tmp_path: Path) -> None:
    (tmp_path / "copyright").write_text(
        "Files: *\nCopyright: x\nLicense: GPL-2+\n\n"
        "Files: *.ogg\n       *.png\nLicense: CC-BY-SA-3.0\n\n"
        "Files: mtg/mods/doors/sounds/*\nLicense: CC-BY-3.0\n"
    )
    paragraphs = read_copyright(tmp_path / "copyright")
    base = "usr/share/games/minetest/games/minetest_game/mods"
    assert licence_for(f"{base}/doors/sounds/door.ogg", paragraphs, "mt") == "CC-BY-3.0 (mt)"
    assert licence_for(f"{base}/fire/sounds/fire.ogg", paragraphs, "mt") == "CC-BY-SA-3.0 (mt)"
    assert licence_for(f"{base}/fire/sounds/fire.wav", paragraphs, "mt") == "GPL-2+ (mt)"
    assert licence_for("a.wav", read_copyright(tmp_path / "absent"), "mt") == "unknown (mt)"


def test_output_names_are_unique_and_short() -> None:
    names = output_names(["a/explosions/tank.wav", "b/explosions/tank.wav", "a/misc/dog.wav", "x/s.cat#07"])
    assert names == {
        "a/explosions/tank.wav": "a_explosions_tank",
        "b/explosions/tank.wav": "b_explosions_tank",
        "a/misc/dog.wav": "dog",
        "x/s.cat#07": "s_07",
    }


def test_a_segment_of_a_long_recording_is_its_own_clip(tmp_path: Path) -> None:
    sr = 8000
    long = np.concatenate([_event(sr, 2.0, seed=s) for s in (1, 2, 3)])  # 6 s, three different parts
    sf.write(tmp_path / "amb.wav", long, sr)
    specs = [
        ClipSpec(tmp_path / "amb.wav", f"audio/{a}.flac", "rain", "weather", "CC0-1.0 (t)", f"t:{a}", "t", a, (a, a + 2))
        for a in (0, 2)
    ] + [ClipSpec(tmp_path / "amb.wav", "audio/late.flac", "rain", "weather", "CC0-1.0 (t)", "t:late", "t", "l", (5, 9))]
    for _ in range(2):  # the second run reuses the finished segments
        report = write_corpus(specs, tmp_path / "out", title="t", group_name="g", progress=False)
    assert report.kept == 2 and report.reused == 2 and report.skipped == {"bad_segment": 1}
    audio, rate = load_audio(tmp_path / "out/audio/2.flac")
    assert rate == sr and audio.shape == (1, 2 * sr)
    np.testing.assert_allclose(audio[0], long[2 * sr : 4 * sr], atol=1e-4)  # 16-bit FLAC


def test_class_cap_keeps_every_class_under_its_share() -> None:
    from collections import Counter

    from soundstage.data.corpus import class_cap

    counts = Counter({"drum": 100, "door": 10, **{f"c{i}": 5 for i in range(30)}})
    cap = class_cap(counts, 0.05)
    assert cap == 8  # 8 <= 0.05 * (8 + 8 + 150) = 8.3, while 9 > 0.05 * 168
    assert class_cap(Counter({"a": 100, "b": 10}), 0.05) == 100  # two classes cannot meet 5 %: nothing is cut


def test_write_corpus_caps_big_classes_stably_and_logs_it(tmp_path: Path) -> None:
    specs = []
    for i in range(24):
        sf.write(tmp_path / f"{i}.wav", _event(8000, 0.6, seed=10 + i), 8000)
        specs.append(_clip(tmp_path / f"{i}.wav", f"audio/{i}.flac", label="big" if i < 6 else f"c{i}"))
    reports = [
        write_corpus(specs, tmp_path / f"out{k}", title="t", group_name="g", progress=False, max_class_fraction=0.1)
        for k in range(2)
    ]
    assert reports[0].per_class["big"] == 2 and reports[0].capped == {"big": 4}  # 2 <= 0.1 * 20
    kept = [sorted(r["path"] for r in read_manifest(tmp_path / f"out{k}")) for k in range(2)]
    assert kept[0] == kept[1]  # the same clips are chosen every run
    capped = [r for r in _skips(tmp_path / "out0").values() if r["reason"] == "class_cap"]
    assert len(capped) == 4 and not any((tmp_path / "out0" / r["where"]).exists() for r in capped)


def test_review_measures_what_a_curator_needs() -> None:
    from soundstage.data.sfx_review import measure

    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = measure(0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t), sr)
    noise = measure(0.1 * RNG.standard_normal(2 * sr), sr)
    assert abs(tone["f0_hz"] - 440) < 5 and tone["pitch_strength"] > 0.9 and tone["flatness"] < 0.05
    assert noise["pitch_strength"] < 0.3 and noise["flatness"] > 0.3 and noise["centroid_hz"] > 3000
    assert tone["envelope"][0] == "#" and tone["envelope"][-1] != "#" and noise["envelope"] == "#" * 24
    beats = np.zeros(2 * sr)
    for k in range(4):
        beats[k * sr // 2 : k * sr // 2 + 800] = RNG.standard_normal(800)
    assert measure(beats, sr)["onsets"] == 4


# ----------------------------------------------------------------------------------------- the whole pipeline


def _fake_package(cache: Path, package: str, files: dict[str, np.ndarray]) -> None:
    """A cached .deb already unpacked, so build_sfx_corpus needs neither apt-get nor dpkg."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"{package}_1.0_all.deb").write_bytes(b"!<arch>\n")
    root = cache / "unpacked" / package
    for rel, audio in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, audio, 16000)
    (root / ".unpacked-from").write_text(f"{package}_1.0_all.deb\n")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nCopyright: someone\nLicense: GPL-2+\n")


def test_build_sfx_corpus_keeps_catalogue_rows_with_captions_and_licences(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sfx, "_run", lambda *a, **k: pytest.fail("no command may run when everything is cached"))
    icons = "usr/share/sounds/sound-icons"
    _fake_package(
        tmp_path / "cache",
        "sound-icons",
        {
            f"{icons}/xylofon.wav": _event(16000, seed=1),
            f"{icons}/piano-3.wav": _event(16000, seed=2),
            f"{icons}/gummy-cat-2.wav": _event(16000, seed=3),
        },
    )
    report, packages = build_sfx_corpus(
        tmp_path / "out", cache_dir=tmp_path / "cache", packages=["sound-icons"], progress=False
    )
    records = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert set(records) == {"audio/sound-icons/xylofon.flac", "audio/sound-icons/piano-3.flac"}  # gummy-cat: keep=no
    xylo = records["audio/sound-icons/xylofon.flac"]
    assert xylo["caption"] == "a xylophone plays a run of notes" and xylo["class"] == "instrument"
    assert xylo["licence"] == "GPL-2+ (sound-icons)" and xylo["source"] == f"debian:sound-icons/{icons}/xylofon.wav"
    assert xylo["sample_rate"] == 16000 and xylo["num_frames"] == 24000
    assert report.per_group == {"sound-icons": 2} and report.skipped["not_found"] > 0
    assert "instrument" in report.summary() and "sound-icons" in report.summary()
    # per package: 3 members found; gummy-cat reviewed and left out by its note; the rest of the catalogue not found
    assert packages.splitlines()[1].split()[:4] == ["sound-icons", "3", "3", "2"]
    assert "not reviewed" not in packages and "not_found" in packages


def test_missing_apt_get_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sfx.shutil, "which", lambda name: None)
    with pytest.raises(SfxError, match="'apt-get' was not found"):
        fetch_debs(["sound-icons"], tmp_path)


def test_failing_apt_get_retries_after_update_and_names_the_command(tmp_path: Path, monkeypatch) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        failed = command[1] == "download"
        return subprocess.CompletedProcess(command, 100 if failed else 0, "", "E: Unable to locate package")

    monkeypatch.setattr(sfx.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(sfx, "_run", run)
    with pytest.raises(SfxError, match=r"(?s)'apt-get download sound-icons' failed .*Unable to locate package"):
        fetch_debs(["sound-icons"], tmp_path)
    download = ["/usr/bin/apt-get", "download", "sound-icons"]
    assert calls == [download, ["/usr/bin/apt-get", "update"], download]
