"""`soundstage evaluate generated` on tiny synthetic folders: known directions, labels as requests, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from soundstage.cli import main
from soundstage.common.audio import load_audio, save_audio
from soundstage.elsa_encoder import ELSA, elsa_preset
from soundstage.evaluation import generated as gen_module
from soundstage.evaluation.aisfx import AiSFX, AiSFXConfig
from soundstage.evaluation.clips import EvaluationInputError
from soundstage.evaluation.generated import evaluate_generated
from soundstage.foa import encode_mono, great_circle_deg
from soundstage.metrics.spatial_metrics import doa_deg

RATE = 16000
DIRECTIONS = [(90.0, 0.0), (-90.0, 10.0), (0.0, -20.0), (180.0, 30.0), (45.0, 0.0), (-135.0, -10.0)]
REQUIRED_KEYS = ("n_gen", "n_ref", "fad_w", "fad_w_inf", "kad_w", "fad_channels", "fad_elsa", "kad_elsa",
                 "spatial_clap", "spatial_clap_ref", "direction_error_deg", "direction_error_deg_framewise",
                 "azimuth_l1_deg", "elevation_l1_deg", "distance_l1_m", "t30_l1_s", "floor_area_l1_m2", "clips")


@pytest.fixture(scope="module")
def models() -> tuple[ELSA, AiSFX]:
    torch.manual_seed(0)
    return ELSA(elsa_preset("tiny")).eval(), AiSFX(AiSFXConfig(channels=(4, 4, 8, 8))).eval()


def plane_wave(azimuth: float, elevation: float, seed: int, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    noise = 0.1 * np.random.default_rng(seed).standard_normal(round(seconds * rate)).astype(np.float32)
    return encode_mono(noise, azimuth, elevation)


def reverberant(azimuth: float, elevation: float, seed: int) -> np.ndarray:
    """A plane wave plus independent noise on every channel: its measured direction is off by a few degrees."""
    foa = plane_wave(azimuth, elevation, seed)
    return foa + 0.15 * np.random.default_rng(seed + 100).standard_normal(foa.shape).astype(np.float32)


def write_dataset(folder: Path, make=reverberant, rate: int = RATE) -> Path:
    records = []
    for i, (az, el) in enumerate(DIRECTIONS):
        path = f"audio/{i}.flac"
        save_audio(folder / path, make(az, el, i), rate, subtype="PCM_24")
        records.append({"path": path, "sample_rate": rate, "num_frames": rate, "caption": f"noise {i}",
                        "spatial_caption": f"noise {i} from azimuth {az:g}", "azimuth_deg": az, "elevation_deg": el,
                        "distance_m": 1.0 + 0.4 * i, "floor_area_m2": 30.0 + 10 * i, "t30_s": 0.3 + 0.1 * i,
                        "source": "synthetic", "licence": "CC0", "split": "test" if i < 4 else "valid"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def write_batch(folder: Path, make=plane_wave, rate: int = RATE) -> Path:
    rows = []
    for i, (az, el) in enumerate(DIRECTIONS):
        save_audio(folder / f"g{i}.wav", make(az, el, 50 + i), rate, subtype="FLOAT")
        rows.append({"id": f"g{i}", "prompt": f"noise {i}", "mode": "parametric", "azimuth_deg": az,
                     "elevation_deg": el, "distance_m": 2.0, "floor_area_m2": None, "t30_s": 0.5, "seconds": 1.0,
                     "seed": i, "sample_rate": rate, "path": f"g{i}.wav"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_plane_waves_from_known_directions_give_those_directions(tmp_path: Path, models: tuple) -> None:
    ref, gen = write_dataset(tmp_path / "ref"), write_batch(tmp_path / "gen")
    elsa, sfx = models
    results = evaluate_generated(gen, ref, out=tmp_path / "eval.json", plots=tmp_path / "plots", elsa=elsa, sfx=sfx,
                                 cache_dir=tmp_path / "cache", progress=False)
    assert all(key in results for key in REQUIRED_KEYS)
    assert set(results["fad_channels"]) == {"W", "Y", "Z", "X"}
    assert results["n_gen"] == results["n_ref"] == 6
    assert results["direction_error_deg"] < 0.5 and results["direction_error_deg_framewise"] < 0.5
    assert results["azimuth_l1_deg"] < 0.5 and results["elevation_l1_deg"] < 0.5
    assert results["floor_area_l1_m2"] is None and results["floor_area_l1_m2_clips"] == 0  # never requested
    assert results["distance_l1_m"] is not None and results["t30_l1_s"] is not None
    assert -1.0 <= results["spatial_clap"] <= 1.0 and results["warnings"]  # 6 clips: far too few for FAD
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written["clips"][0]["id"] == "g0" and "kad_w_contribution" in written["clips"][0]
    assert all(Path(p).is_file() for p in results["plots"].values()) and len(results["plots"]) == 4
    # two models and the level x 12 files, and the 6 generated clips' DOAs
    assert results["timing"]["cache_misses"] == 3 * 12 + 6
    again = evaluate_generated(gen, ref, out=tmp_path / "again.json", elsa=elsa, sfx=sfx,
                               cache_dir=tmp_path / "cache", progress=False)
    assert again["timing"]["cache_hits"] == 3 * 12 + 6 and again["timing"]["cache_misses"] == 0
    assert again["fad_w"] == results["fad_w"] and again["direction_error_deg"] == results["direction_error_deg"]
    assert again["direction_error_deg_framewise"] == results["direction_error_deg_framewise"]


def test_labels_as_requests_on_real_clips_give_the_estimators_own_error(tmp_path: Path, models: tuple) -> None:
    data = write_dataset(tmp_path / "data")
    elsa, sfx = models
    results = evaluate_generated(data, data, out=tmp_path / "eval.json", elsa=elsa, sfx=sfx, cache_dir=None,
                                 progress=False)
    own = []
    for i, (az, el) in enumerate(DIRECTIONS):
        audio, _ = load_audio(data / f"audio/{i}.flac")
        own.append(float(great_circle_deg(*doa_deg(audio), az, el)))
    assert results["direction_error_deg"] == pytest.approx(float(np.median(own)), abs=1e-6)
    assert 0.5 < results["direction_error_deg"] < 20.0  # the added noise moves the estimate a little
    assert results["fad_w"] == pytest.approx(0.0, abs=1e-6) and results["fad_elsa"] == pytest.approx(0.0, abs=1e-6)
    assert results["spatial_clap"] == pytest.approx(results["spatial_clap_ref"])  # the same clips and captions
    split = evaluate_generated(data, data, out=tmp_path / "split.json", gen_split="test", ref_split="valid",
                               elsa=elsa, sfx=sfx, cache_dir=None, progress=False)
    assert (split["n_gen"], split["n_ref"]) == (4, 2) and split["fad_w"] > 0


def test_bad_input_names_the_folder_or_file(tmp_path: Path, models: tuple) -> None:
    elsa, sfx = models
    ref = write_dataset(tmp_path / "ref")

    def run(gen: Path, reference: Path = ref) -> str:
        with pytest.raises(EvaluationInputError) as info:
            evaluate_generated(gen, reference, out=tmp_path / "x.json", elsa=elsa, sfx=sfx, cache_dir=None,
                               progress=False)
        return str(info.value)

    (tmp_path / "empty").mkdir()
    assert "no manifest.jsonl (it is empty)" in run(tmp_path / "empty")
    assert "no such folder" in run(tmp_path / "missing")
    gen = write_batch(tmp_path / "gen")
    (gen / "g3.wav").unlink()
    assert f"{gen / 'g3.wav'}: no such file" in run(gen)
    mono = write_batch(tmp_path / "mono", make=lambda az, el, seed: plane_wave(az, el, seed)[:1])
    assert f"{mono / 'g0.wav'}: mono audio; expected 4-channel" in run(mono)
    fast = write_batch(tmp_path / "fast", make=lambda az, el, seed: plane_wave(az, el, seed, rate=24000), rate=24000)
    assert "24000 Hz" in run(fast) and "16000 Hz" in run(fast)
    mixed = write_batch(tmp_path / "mixed")
    save_audio(mixed / "g2.wav", plane_wave(0, 0, 1, rate=22050), 22050, subtype="FLOAT")
    assert f"{mixed / 'g2.wav'}: 22050 Hz, but the clips are at 16000 Hz" in run(mixed)
    assert "not a FOA dataset folder" in run(ref, reference=write_batch(tmp_path / "gen2"))


def test_cli_prints_the_table_and_names_the_files(tmp_path: Path, models: tuple, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    elsa, sfx = models
    monkeypatch.setattr(gen_module.ELSA, "from_pretrained", classmethod(lambda cls, *a, **k: elsa))
    monkeypatch.setattr(gen_module, "load_aisfx", lambda *a, **k: sfx)
    ref, gen = write_dataset(tmp_path / "ref"), write_batch(tmp_path / "gen")
    out = tmp_path / "out" / "eval.json"
    assert main(["evaluate", "generated", "--gen", str(gen), "--ref", str(ref), "--out", str(out), "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "FAD aiSFX, W" in printed and "spatial CLAP" in printed and f"wrote {out}" in printed
    assert json.loads(out.read_text())["n_gen"] == 6
    assert main(["evaluate", "generated", "--gen", str(tmp_path / "nothing"), "--ref", str(ref)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["evaluate", "generated", "--ref", str(ref)]) == 2
    assert main(["evaluate", "codec", "--gen", str(gen)]) == 2
    assert "--gen is an option of `evaluate generated`" in capsys.readouterr().err


def test_a_set_made_6_db_quieter_is_measured_6_db_quieter(tmp_path: Path, models: tuple) -> None:
    ref = write_dataset(tmp_path / "ref")
    quiet = write_dataset(tmp_path / "quiet", make=lambda az, el, seed: 0.5 * reverberant(az, el, seed))
    elsa, sfx = models
    results = evaluate_generated(quiet, ref, out=tmp_path / "eval.json", elsa=elsa, sfx=sfx, cache_dir=None,
                                 progress=False)
    levels = [20 * np.log10(np.sqrt(np.mean(np.square(reverberant(az, el, i)[0], dtype=np.float64))))
              for i, (az, el) in enumerate(DIRECTIONS)]
    assert results["w_level_ref_dbfs_median"] == pytest.approx(float(np.median(levels)), abs=0.01)  # 24-bit files
    assert results["w_level_offset_db"] == pytest.approx(-6.02, abs=0.01)
    assert results["w_level_w1_db"] == pytest.approx(6.02, abs=0.01)  # every clip moved by the same gain
    assert [c["w_level_dbfs"] for c in results["clips"]] == pytest.approx([v - 6.02 for v in levels], abs=0.01)
    assert "W level median, dBFS" in results["table"]
