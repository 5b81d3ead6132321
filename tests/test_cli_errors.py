"""Every command refuses bad input with one line naming the problem, exit status 2, and writes nothing.

A table of (argv, message, exit status): ``{d}`` in argv is a folder of small bad inputs built once per test. After
each refused command every file in that folder is byte-for-byte as before and no new file exists, so a refused
command neither writes a half output nor touches earlier results. Then: a bug is one line with exit 1 (the
traceback only with --debug), Ctrl-C is exit 130, and --version / ``python -m soundstage`` work.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soundstage import cli, foa_files
from soundstage.codec.model import CODEC_PRESETS, FOACodec
from soundstage.common.audio import save_audio
from soundstage.foa import encode_mono

SR = 16000


def _build_inputs(d: Path) -> None:
    """Good and bad inputs for every command of the table."""
    noise = 0.2 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    save_audio(d / "foa.wav", encode_mono(noise, 90.0, 0.0), SR, subtype="FLOAT")
    save_audio(d / "short.wav", encode_mono(noise[:10], 90.0, 0.0), SR, subtype="FLOAT")
    save_audio(d / "silent.wav", np.zeros((4, SR), np.float32), SR)
    save_audio(d / "stereo.wav", np.stack([noise, noise]), SR)
    save_audio(d / "nan.wav", np.full((4, 1000), np.nan, np.float32), SR, subtype="FLOAT")
    (d / "junk.wav").write_text("not audio\n")
    (d / "folder.wav").mkdir()
    (d / "audio").mkdir()
    save_audio(d / "audio" / "dog.wav", noise[None], SR)
    (d / "latin1.csv").write_bytes(b"file,caption\ndog.wav,a dog\ncaf\xe9.wav,caf\xe9 noise\n")
    (d / "none.csv").write_text("file,caption\nmissing.wav,a dog\n,no file\n")
    (d / "corpus").mkdir()
    (d / "corpus" / "manifest.jsonl").write_text('{"earlier": "result"}\n')
    FOACodec(CODEC_PRESETS["tiny"]).save_pretrained(d / "codec")
    weights = d / "codec" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # an interrupted download


BAD = [  # (argv, message on stderr, exit status)
    # item 1: angles must be finite numbers; any finite value is a rotation
    ("foa rotate {d}/foa.wav --out {d}/r.wav --yaw 1e309", "argument --yaw: expected a finite number, got '1e309'", 2),
    ("foa rotate {d}/foa.wav --out {d}/r.wav --yaw nan", "argument --yaw: expected a finite number, got 'nan'", 2),
    ("foa rotate {d}/foa.wav --out {d}/r.wav --pitch inf", "argument --pitch: expected a finite number", 2),
    ("foa rotate {d}/foa.wav --out {d}/r.wav --roll=-inf", "argument --roll: expected a finite number", 2),
    ("foa rotate {d}/foa.wav --out {d}/r.wav --yaw left", "argument --yaw: expected a number, got 'left'", 2),
    # item 5: every input file is checked, with a message naming it
    ("foa analyze {d}/nope.wav", "{d}/nope.wav: no such file", 2),
    ("foa analyze {d}/folder.wav", "{d}/folder.wav: is a directory, not an audio file", 2),
    ("foa analyze {d}/junk.wav", "{d}/junk.wav: not an audio file soundfile can read", 2),
    ("foa analyze {d}/short.wav", "{d}/short.wav: too short: 10 samples (0.6 ms); at least 512 samples", 2),
    ("foa analyze {d}/silent.wav --plot {d}/map.png", ("{d}/silent.wav: silent (peak 0.0e+00, below -80 dBFS); "
                                                       "there is no sound to analyse"), 2),
    ("foa analyze {d}/stereo.wav", ("{d}/stereo.wav: expected 4-channel first-order ambisonics (AmbiX W, Y, Z, X), "
                                    "found 2 channel(s)"), 2),
    ("foa analyze {d}/nan.wav", "{d}/nan.wav: contains NaN or Inf samples", 2),
    ("foa preview {d}/stereo.wav --out {d}/p.wav", "{d}/stereo.wav: expected 4-channel", 2),
    ("foa convert {d}/nope.wav --to fuma --out {d}/c.wav", "{d}/nope.wav: no such file", 2),
    # item 5: output names are checked before any work
    ("foa rotate {d}/foa.wav --out {d}/r.txt", "{d}/r.txt: unsupported output format '.txt': use .wav or .flac", 2),
    ("foa convert {d}/foa.wav --to fuma --out {d}/c", "unsupported output format '(no suffix)': use .wav or .flac", 2),
    ("foa preview {d}/foa.wav --out {d}/folder.wav", "{d}/folder.wav: is a directory; give a file name ending in", 2),
    ("foa analyze {d}/foa.wav --plot {d}/map.jpg", "{d}/map.jpg: unsupported output format '.jpg': use .png", 2),
    # item 5: CSV import
    ("data import --csv {d}/latin1.csv --audio-root {d}/audio --out {d}/out",
     "{d}/latin1.csv:3: byte 0xe9 is not UTF-8 text; save the CSV as UTF-8", 2),
    ("data import --csv {d}/none.csv --audio-root {d}/audio --out {d}/out",
     ("import none.csv: none of the 2 clips could be used, so nothing was written to {d}/out: none.csv:2: "
      "missing_file"), 2),
    ("data import --csv {d}/none.csv --audio-root {d}/audio --out {d}/corpus", "none of the 2 clips could be used", 2),
    ("data import --csv {d}/nope.csv --audio-root {d}/audio --out {d}/out", "{d}/nope.csv: no such CSV file", 2),
    # item 5: models and counts
    ("evaluate codec --model {d}/codec --data {d}/corpus --out {d}/eval.json",
     "{d}/codec/model.safetensors: not a complete safetensors file", 2),
    ("calibrate codec --model {d}/codec --data {d}/corpus --out {d}/calibrated",
     "{d}/codec/model.safetensors: not a complete safetensors file", 2),
    ("evaluate codec --data {d}/corpus --max-clips 0", "argument --max-clips: expected a whole number >= 1, got '0'", 2),
    ("calibrate codec --data {d}/corpus --out {d}/c --max-clips -1", "argument --max-clips: expected a whole number", 2),
    ("train codec --data {d}/corpus --out {d}/run --steps 0", "argument --steps: expected a whole number >= 1", 2),
    ("train codec --data {d}/corpus --out {d}/run --lr nan", "argument --lr: expected a finite number, got 'nan'", 2),
    ("train codec --data {d}/corpus --out {d}/run --lr 0", "argument --lr: expected a number > 0, got '0'", 2),
    ("train codec --data {d}/corpus --out {d}/run --ema-decay 1", ("argument --ema-decay: expected a number in [0, 1), "
     "got '1'"), 2),
    ("train codec --data {d}/corpus --out {d}/run --batch-size 1.5", "argument --batch-size: expected a whole number", 2),
    ("train elsa --data {d}/corpus --out {d}/run --loss x=1", "error: --loss sets codec loss weights", 2),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    _build_inputs(folder)
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _run(argv: list[str]) -> int:
    """``soundstage`` in-process: the exit status of a handler's error or of argparse's refusal."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("command", "message", "status"), BAD, ids=[row[0].split(" --")[0] for row in BAD])
def test_bad_input_is_one_line_and_writes_nothing(inputs: Path, capsys: pytest.CaptureFixture[str], command: str,
                                                  message: str, status: int) -> None:
    before = _snapshot(inputs)
    assert _run(command.format(d=inputs).split()) == status
    err = capsys.readouterr().err
    assert message.format(d=inputs) in err
    assert "Traceback" not in err
    assert _snapshot(inputs) == before  # nothing written, nothing changed


def test_a_silent_file_is_rotated_with_a_warning(inputs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["foa", "rotate", str(inputs / "silent.wav"), "--yaw", "1e300", "--out", str(tmp_path / "r.wav")]) == 0
    assert f"{inputs / 'silent.wav'}: silent" in caplog.text and (tmp_path / "r.wav").is_file()


@pytest.mark.parametrize(("error", "status", "line"), [
    (ZeroDivisionError("division by zero"), 1, ("soundstage: internal error (ZeroDivisionError: division by zero); "
                                                "this is a bug, re-run with --debug for the traceback")),
    (KeyboardInterrupt(), 130, "soundstage: interrupted"),
])
@pytest.mark.parametrize("debug", [False, True])
def test_bugs_and_interrupts_are_one_line_unless_debug(inputs: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], error: BaseException,
                                                       status: int, line: str, debug: bool) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(foa_files, "analyze_foa_file", fail)
    assert cli.main([*(["--debug"] if debug else []), "foa", "analyze", str(inputs / "foa.wav")]) == status
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == line
    assert ("Traceback" in err) == debug and (len(err.splitlines()) == 1) != debug


def _soundstage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soundstage", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_version_and_python_dash_m() -> None:
    from soundstage import __version__

    version = _soundstage("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"soundstage {__version__}"
    missing = _soundstage("foa", "analyze", "/no/such/file.wav")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == "soundstage: error: /no/such/file.wav: no such file"
