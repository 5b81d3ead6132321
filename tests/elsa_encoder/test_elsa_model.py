"""ELSA model: shapes, unit norms, physics of the intensity features, save/load, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from soundstage.common.audio import resample
from soundstage.common.pretrained import FormatError
from soundstage.common.text_encoder import TextEncoderError
from soundstage.elsa_encoder import ELSA, ELSA_PRESETS, ELSAConfig, ELSAInputError, elsa_preset
from soundstage.elsa_encoder.features import intensity_summary, rotate_intensity
from soundstage.foa import encode_mono, rotate_foa, vector_to_angles

SR = 16000


def noise_foa(azimuth: float, elevation: float = 0.0, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    source = torch.from_numpy(np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32))
    return encode_mono(0.1 * source, azimuth, elevation)


def test_embeddings_are_batched_unit_vectors(tiny_elsa: ELSA) -> None:
    batch = torch.stack([noise_foa(a, seed=i) for i, a in enumerate((0.0, 90.0, -120.0))])
    with torch.no_grad():
        audio = tiny_elsa.embed_audio(batch, SR)
        single = tiny_elsa.embed_audio(batch[1], SR)  # (4, T) -> (1, D)
        text = tiny_elsa.embed_text(["A dog barks to the left.", "Rain in a large room."])
    assert audio.shape == (3, 512) and single.shape == (1, 512) and text.shape == (2, 512)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(single[0], audio[1], atol=1e-5, rtol=1e-4)  # no cross-talk inside a batch


def test_predict_spatial_returns_physical_units(tiny_elsa: ELSA) -> None:
    with torch.no_grad():
        out = tiny_elsa.predict_spatial(np.stack([noise_foa(30.0).numpy()] * 2), SR)
    assert set(out) == {"azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s"}
    assert all(v.shape == (2,) for v in out.values())
    assert torch.all(out["azimuth_deg"].abs() <= 180) and torch.all(out["elevation_deg"].abs() <= 90)
    assert torch.all((out["distance_m"] >= 0.5) & (out["distance_m"] <= 4.0))
    assert torch.all((out["floor_area_m2"] >= 13.3 - 1e-3) & (out["floor_area_m2"] <= 277.4 + 1e-3))
    assert torch.all((out["t30_s"] >= 0.14 - 1e-4) & (out["t30_s"] <= 2.67 + 1e-4))


@pytest.mark.parametrize("azimuth, elevation", [(0.0, 0.0), (90.0, 0.0), (-135.0, 20.0), (170.0, -30.0)])
def test_intensity_features_point_at_the_source(tiny_elsa: ELSA, azimuth: float, elevation: float) -> None:
    logmel, intensity = tiny_elsa.features(noise_foa(azimuth, elevation).unsqueeze(0))
    assert intensity.shape[1:3] == (6, 16) and logmel.shape[1] == 16
    overall_active = intensity_summary(logmel, intensity, 4)[0, -6:-3]
    assert overall_active.norm() == pytest.approx(1.0, abs=1e-3)  # a single plane wave is not diffuse
    az, el = vector_to_angles(overall_active)
    assert float(az) == pytest.approx(azimuth, abs=0.5) and float(el) == pytest.approx(elevation, abs=0.5)
    assert intensity[0, 3:].abs().max() < 1e-3  # a plane wave has no reactive intensity


@pytest.mark.parametrize("yaw", [90.0, -30.0, 180.0])
def test_intensity_features_rotate_with_the_scene(tiny_elsa: ELSA, yaw: float) -> None:
    foa = noise_foa(40.0, 10.0) + 0.5 * noise_foa(-100.0, -20.0, seed=3)  # two sources: not a trivial field
    _, turned = tiny_elsa.features(rotate_foa(foa, yaw_deg=yaw).unsqueeze(0))
    _, original = tiny_elsa.features(foa.unsqueeze(0))
    torch.testing.assert_close(turned, rotate_intensity(original, yaw), atol=1e-4, rtol=1e-3)


def test_save_and_load_roundtrip_without_the_text_model(tiny_elsa: ELSA, tmp_path: Path) -> None:
    tiny_elsa.save_pretrained(tmp_path / "elsa")
    loaded = ELSA.from_pretrained(tmp_path / "elsa")
    own, other = tiny_elsa.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys()
    assert all(torch.equal(own[k], other[k]) for k in own)
    with safe_open(str(tmp_path / "elsa" / "model.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
    assert not any("embeddings" in k or "attention" in k or "text_encoder" in k for k in keys)
    assert json.loads((tmp_path / "elsa" / "config.json").read_text())["text_encoder"] == "minilm"
    foa = noise_foa(60.0)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_audio(foa, SR), tiny_elsa.embed_audio(foa, SR))
        torch.testing.assert_close(loaded.embed_text(["a bell"]), tiny_elsa.embed_text(["a bell"]))


def test_loading_refuses_other_formats(tiny_elsa: ELSA, tmp_path: Path) -> None:
    tiny_elsa.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "_format": "soundstage.codec"}))
    with pytest.raises(FormatError, match="not a 'soundstage.elsa' model"):
        ELSA.from_pretrained(tmp_path)


def test_fine_tuned_text_layers_train_and_are_saved(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ELSA(elsa_preset("tiny", text_finetune_layers=1))
    assert any(k.startswith("text_top_layers.") for k in model.state_dict())
    texts = ["a dog barks to the left", "a bell"]
    assert not model.embed_text(texts).requires_grad  # inference: no graph
    text = model.embed_text_features(model.text_features(texts))  # what training differentiates
    assert text.shape == (2, 512)
    text.sum().backward()
    assert all(p.grad is not None for p in model.text_top_layers.parameters())
    assert not any(p.requires_grad for p in model.text_encoder.model.parameters())  # the shared model stays frozen
    model.save_pretrained(tmp_path)
    loaded = ELSA.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_text(["a bell"]), model.eval().embed_text(["a bell"]))


def test_presets_and_config_validation() -> None:
    assert set(ELSA_PRESETS) == {"tiny", "small", "paper"}
    assert all(c.embed_dim == 512 for c in ELSA_PRESETS.values())
    with pytest.raises(ValueError, match="hop_length"):
        ELSAConfig(hop_length=4096, n_fft=1024)
    with pytest.raises(KeyError, match="choose one of"):
        elsa_preset("huge")


@pytest.mark.parametrize(
    "audio, match",
    [
        (torch.zeros(SR), "mono audio"),
        (torch.zeros(1, SR), "mono audio"),
        (torch.zeros(2, SR), "stereo audio"),
        (torch.zeros(3, 2, SR), "stereo audio"),
        (torch.zeros(SR, 4), "channels last"),
        (torch.zeros(4, 0), "empty audio"),
        (torch.full((4, SR), float("nan")), "NaN or Inf"),
        (torch.zeros(4, SR, dtype=torch.int16), "float audio"),
        ([[0.0] * 4], "tensor or array"),
    ],
)
def test_bad_audio_is_rejected_clearly(tiny_elsa: ELSA, audio: torch.Tensor, match: str) -> None:
    with pytest.raises(ELSAInputError, match=match):
        tiny_elsa.embed_audio(audio, SR)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, "16k", True])
def test_bad_sample_rate_is_rejected(tiny_elsa: ELSA, rate: object) -> None:
    with pytest.raises(ELSAInputError, match="sample_rate"):
        tiny_elsa.embed_audio(noise_foa(0.0), rate)  # type: ignore[arg-type]


def test_other_sample_rates_are_resampled(tiny_elsa: ELSA) -> None:
    foa = noise_foa(45.0).numpy()
    at_48k = resample(foa, SR, 48000)
    prepared = tiny_elsa.prepare_audio(at_48k, 48000)
    torch.testing.assert_close(prepared[0], torch.from_numpy(resample(at_48k, 48000, SR)))
    assert tiny_elsa.prepare_audio(foa, 16000.0).shape == (1, 4, foa.shape[-1])  # a whole float rate is fine
    with torch.no_grad():
        assert tiny_elsa.embed_audio(at_48k, 48000).shape == (1, 512)


def test_very_short_audio_is_padded(tiny_elsa: ELSA) -> None:
    with torch.no_grad():
        assert tiny_elsa.embed_audio(torch.zeros(4, 10), SR).shape == (1, 512)


def test_bad_text_is_rejected_and_long_text_truncated() -> None:
    model = ELSA(elsa_preset("tiny", text_max_length=8))
    with pytest.raises(TextEncoderError, match="empty"):
        model.embed_text(["a dog", ""])
    with pytest.raises(TypeError, match="list of strings"):
        model.embed_text("a dog")
    with pytest.warns(UserWarning, match="truncated"):
        assert model.embed_text(["a dog barks " * 30]).shape == (1, 512)


def test_missing_text_model_names_the_setting(tmp_path: Path) -> None:
    model = ELSA(elsa_preset("tiny", text_encoder=str(tmp_path / "missing")))
    with pytest.raises(TextEncoderError, match="text_encoder"):
        model.embed_text(["a dog"])
