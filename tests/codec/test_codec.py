"""FOA codec: backbones, shapes and compression, save/load, determinism, bad input, losses, training, resume."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from soundstage.codec import (
    CODEC_PRESETS,
    CodecInputError,
    FOACodec,
    FOACodecConfig,
    codec_fingerprint,
    measure_latent_scale,
)
from soundstage.codec.calibrate import calibrate_output_eq
from soundstage.codec.direction_latents import DIRECTION_GAIN, frame_direction, impose_frame_direction
from soundstage.codec.evaluate import reconstruct
from soundstage.codec.losses import (
    CodecLoss,
    CodecLossConfig,
    LogMelLoss,
    MultiChannelSTFTLoss,
    band_energy_loss,
    kl_loss,
    level_loss,
    partial_level_loss,
    spatial_loss,
    spatial_terms,
)
from soundstage.codec.model import BACKBONES, RETIRED_FIELDS
from soundstage.codec.stft_autoencoder import istft_same, stft_same
from soundstage.common.audio import load_audio
from soundstage.common.pretrained import FormatError
from soundstage.data.manifest import read_manifest, split_records
from soundstage.foa import (
    FOAInputError,
    broadband_doa,
    direction_vector,
    encode_mono,
    rotate_foa,
    vector_to_angles,
)
from soundstage.metrics.audio_metrics import third_octave_band_energy_error_db
from soundstage.train.codec_task import (
    CODEC_DATA_DEFAULTS,
    CODEC_TRAIN_DEFAULTS,
    CodecTask,
    ToneGateError,
    make_codec_task,
)
from soundstage.train.trainer import TrainConfig, latest_checkpoint, run_training

from .synthetic import make_dataset, synthetic_foa

MINI_OOBLECK = FOACodecConfig(arch="oobleck", sample_rate=8000, hop=64, latent_channels=2, oobleck_hidden=4,
                              oobleck_ratios=(2, 4, 8), oobleck_multiples=(1, 2, 4), oobleck_decoder_channels=8)


def tiny_codec(seed: int = 0) -> FOACodec:
    torch.manual_seed(seed)
    return FOACodec(CODEC_PRESETS["tiny"]).eval()


@pytest.mark.parametrize("config", [CODEC_PRESETS["tiny"], MINI_OOBLECK], ids=["stft", "oobleck"])
@pytest.mark.parametrize("length", [1, 255, 257, 1001])
def test_odd_length_round_trip_shapes(config: FOACodecConfig, length: int) -> None:
    torch.manual_seed(0)
    codec = FOACodec(config).eval()
    foa = 0.1 * torch.randn(2, 4, length)
    with torch.no_grad():
        latent = codec.encode(foa)
        assert latent.shape == (2, config.latent_channels, math.ceil(length / config.hop))
        assert codec.decode(latent, length=length).shape == (2, 4, length)
        assert codec.decode(latent).shape == (2, 4, latent.shape[-1] * config.hop)
        assert codec.encode(foa[0]).shape == (1, config.latent_channels, latent.shape[-1])  # (4, T) accepted


@pytest.mark.parametrize("config", [CODEC_PRESETS["tiny"], CODEC_PRESETS["small"], MINI_OOBLECK],
                         ids=["tiny", "small", "oobleck"])
def test_compression_ratio_is_exactly_128(config: FOACodecConfig) -> None:
    torch.manual_seed(0)
    codec = FOACodec(config).eval()
    samples = 7 * config.hop
    with torch.no_grad():
        assert codec.encode(torch.zeros(1, 4, samples)).numel() * 128 == 4 * samples


@pytest.mark.parametrize("config", [CODEC_PRESETS["tiny"], MINI_OOBLECK], ids=["stft", "oobleck"])
def test_both_backbones_share_one_interface_and_keep_the_weight_names(config: FOACodecConfig) -> None:
    torch.manual_seed(0)
    backbone = BACKBONES[config.arch](config)
    c, frames = config.latent_channels, 3
    params = backbone.encode(0.1 * torch.randn(2, 4, frames * config.hop))
    assert params.shape == (2, 2 * c, frames)  # means, then scales
    assert backbone.decode(params[:, :c]).shape == (2, 4, frames * config.hop)
    codec = FOACodec(config)
    # the codec's weights are its backbone's, under the names of the codec format
    assert {id(p) for p in codec.backbone.parameters()} == {id(p) for p in codec.parameters()}
    prefixes = {key.split(".")[0] for key in codec.state_dict()}
    assert prefixes == ({"latent_scale", "encoder", "decoder"} if config.arch == "stft" else {"latent_scale", "oobleck"})
    with pytest.raises(ValueError, match="stft architecture only"):
        FOACodec(MINI_OOBLECK).set_output_eq([100.0], [1.0])


def test_config_validation_names_the_rule() -> None:
    with pytest.raises(ValueError, match="must be 128"):
        FOACodecConfig(hop=512, latent_channels=32)
    with pytest.raises(ValueError, match="twice latent_channels"):
        dataclasses.replace(CODEC_PRESETS["paper"], oobleck_hidden=64)
    with pytest.raises(ValueError, match="power of two"):
        FOACodecConfig(stft_hop=384)


def test_stft_pair_reconstructs_exactly() -> None:
    x = torch.randn(3, 1, 8 * 128)
    spec = stft_same(x, 256, 128)
    assert spec.shape[-1] == 8
    torch.testing.assert_close(istft_same(spec[:, 0], 256, 128), x[:, 0], atol=1e-5, rtol=0)


def test_output_eq_scales_every_channel_alike_and_is_saved(tmp_path: Path) -> None:
    codec = tiny_codec()
    foa = torch.from_numpy(synthetic_foa(np.random.default_rng(3), 1.0, 8000, 70.0, 20.0))
    with torch.no_grad():
        plain = reconstruct(codec, foa)
        codec.set_output_eq([100.0, 3000.0], [6.0206, 6.0206])  # flat +6 dB: twice the amplitude
        louder = reconstruct(codec, foa)
    torch.testing.assert_close(louder, 2.0 * plain, rtol=1e-4, atol=1e-7)
    codec.set_output_eq([100.0, 3000.0], [-12.0, 6.0])  # a tilt: low bins quieter, high bins louder
    codec.save_pretrained(tmp_path / "eq")
    loaded = FOACodec.from_pretrained(tmp_path / "eq")
    assert loaded.config.output_eq_db == (-12.0, 6.0)
    with torch.no_grad():
        torch.testing.assert_close(reconstruct(loaded, foa), reconstruct(codec, foa), rtol=0, atol=0)
    gain = loaded.decoder.output_gain
    assert float(gain[1]) == pytest.approx(10 ** (-12 / 20)) and float(gain[-1]) == pytest.approx(10 ** (6 / 20))
    fresh = tiny_codec(seed=4)
    fresh.init_from_pretrained(tmp_path / "eq")  # a measured value: taken over with the weights
    torch.testing.assert_close(fresh.decoder.output_gain, gain)
    with pytest.raises(ValueError, match="one finite gain"):
        FOACodecConfig(output_eq_hz=(100.0, 200.0), output_eq_db=(1.0,))
    with pytest.raises(ValueError, match="positive and increasing"):
        FOACodecConfig(output_eq_hz=(200.0, 100.0), output_eq_db=(1.0, 2.0))


def test_calibration_removes_a_known_level_error_per_band() -> None:
    codec = tiny_codec()
    rng = np.random.default_rng(5)
    clips = [torch.from_numpy(synthetic_foa(rng, 1.0, 8000, az, 0.0)) for az in (-100.0, 0.0, 45.0, 150.0)]

    def band_medians() -> np.ndarray:
        with torch.no_grad():
            errors = [third_octave_band_energy_error_db(reconstruct(codec, c)[0], c[0], 8000, signed=True)
                      for c in clips]
        return np.nanmedian(torch.stack(errors).numpy(), axis=0)

    calibrate_output_eq(codec, clips)  # whatever level error the untrained decoder has
    hz, calibrated = codec.config.output_eq_hz, np.array(codec.config.output_eq_db)
    residual = band_medians()
    codec.set_output_eq(hz, (calibrated + 6.0206).tolist())  # a known error: twice the amplitude in every band
    np.testing.assert_allclose(band_medians(), residual + 6.0206, atol=1e-3)
    result = calibrate_output_eq(codec, clips)
    assert result["bias_before_db"] > 5.0
    np.testing.assert_allclose(result["db"], calibrated - residual, atol=0.01)  # measured and taken out per band
    assert abs(np.nanmedian(band_medians())) < 0.5  # and no bias left
    assert len(result["hz"]) == len(result["db"]) == len(codec.config.output_eq_db)


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    codec = tiny_codec()
    codec.set_latent_scale(0.37)
    foa = 0.1 * torch.randn(1, 4, 777)
    with torch.no_grad():
        latent, audio = codec.encode(foa), codec.decode(codec.encode(foa), 777)
    codec.save_pretrained(tmp_path / "codec")
    assert json.loads((tmp_path / "codec" / "config.json").read_text())["latent_scale"] == pytest.approx(0.37)
    loaded = FOACodec.from_pretrained(tmp_path / "codec")
    with torch.no_grad():
        assert torch.equal(loaded.encode(foa), latent)
        assert torch.equal(loaded.decode(latent, 777), audio)


def test_init_from_pretrained_copies_weights_and_refuses_another_architecture(tmp_path: Path) -> None:
    trained = tiny_codec(seed=1)
    trained.set_latent_scale(0.5)
    trained.save_pretrained(tmp_path / "trained")
    fresh = tiny_codec(seed=2)
    fresh.init_from_pretrained(tmp_path / "trained")
    foa = 0.1 * torch.randn(1, 4, 600)
    with torch.no_grad():
        assert torch.equal(fresh.encode(foa), trained.encode(foa))
    assert fresh.config.latent_scale == pytest.approx(0.5)
    wider = FOACodec(dataclasses.replace(CODEC_PRESETS["tiny"], dim=CODEC_PRESETS["tiny"].dim * 2))
    with pytest.raises(FormatError, match="different config.*dim"):
        wider.init_from_pretrained(tmp_path / "trained")


def test_folders_listing_the_retired_decoder_options_load_only_with_them_off(tmp_path: Path) -> None:
    codec = tiny_codec()
    folder = codec.save_pretrained(tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **RETIRED_FIELDS}))  # as codecs were saved before
    assert FOACodec.from_pretrained(folder).config == codec.config
    (folder / "config.json").write_text(json.dumps({**config, **RETIRED_FIELDS, "head_hidden": 1024}))
    with pytest.raises(FormatError, match="no longer has.*'head_hidden': 1024"):
        FOACodec.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "phase_advanc": False}))  # anything else: strict
    with pytest.raises(FormatError, match="phase_advanc"):
        FOACodec.from_pretrained(folder)


def test_frame_direction_of_a_plane_wave_is_its_unit_vector_and_of_silence_zero() -> None:
    mono = np.random.default_rng(0).standard_normal(8 * 256).astype(np.float32) * 0.1
    foa = torch.from_numpy(encode_mono(mono, 90.0, 30.0))[None]  # left and up
    foa[..., 256:512] = 0.0  # one silent frame
    direction = frame_direction(foa, 256)
    assert direction.shape == (1, 3, 8)
    expected = torch.tensor([0.0, math.cos(math.radians(30)), math.sin(math.radians(30))])
    torch.testing.assert_close(direction[0, :, 0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(direction[0, :, 1], torch.zeros(3))
    with pytest.raises(ValueError, match="multiple of the hop"):
        frame_direction(foa[..., :-1], 256)


def test_imposing_a_frame_direction_pans_x_y_z_and_leaves_w_alone() -> None:
    torch.manual_seed(0)
    foa = 0.1 * torch.randn(2, 4, 10 * 128)
    foa[..., :128] *= torch.linspace(0, 1, 128)  # a fade-in: W energy uneven within a frame
    target = torch.empty(2, 3, 10).uniform_(-0.7, 0.7)
    out = impose_frame_direction(foa, target, 128)
    assert torch.equal(out[:, 0], foa[:, 0])
    torch.testing.assert_close(frame_direction(out, 128), target, atol=2e-3, rtol=0)
    # the gains are smooth: no jump between frames larger than the targets' own steps allow
    gain = (out[:, 3] - foa[:, 3])[..., 1:] / foa[:, 0, 1:]  # W is 0 at the first sample
    assert gain.diff(dim=-1).abs().max() < 0.1


@pytest.mark.parametrize("config", [CODEC_PRESETS["tiny"], dataclasses.replace(
    MINI_OOBLECK, latent_channels=4, hop=128, oobleck_hidden=8, oobleck_ratios=(2, 8, 8), direction_latents=True)],
    ids=["stft", "oobleck"])
def test_an_untrained_codec_with_direction_latents_returns_a_source_at_90_degrees_at_90_degrees(
        config: FOACodecConfig) -> None:
    torch.manual_seed(0)
    codec = FOACodec(config).eval()
    assert codec.config.direction_latents
    mono = 0.1 * np.random.default_rng(1).standard_normal(config.sample_rate).astype(np.float32)
    foa = torch.from_numpy(encode_mono(mono, 90.0, 0.0))
    with torch.no_grad():
        latent = codec.encode(foa)
        torch.testing.assert_close(latent[0, -3:] / (DIRECTION_GAIN * codec.latent_scale),
                                   torch.tensor([0.0, 1.0, 0.0])[:, None].expand(3, latent.shape[-1]),
                                   atol=1e-4, rtol=0)
        decoded = codec.decode(latent)
    # each latent frame's regression of x, y, z on W is the input's (the untrained codec is too quiet for the
    # encoder's energy floor to leave out, so compare without it) ...
    frames = decoded.reshape(1, 4, -1, config.hop)
    regression = (frames[:, [3, 1, 2]] * frames[:, :1]).sum(-1) / frames[:, 0].square().sum(-1)
    torch.testing.assert_close(regression[0], torch.tensor([0.0, 1.0, 0.0])[:, None].expand_as(regression[0]),
                               atol=2e-3, rtol=0)
    # ... so the broadband intensity (the time-domain correlation of W with x, y, z) points at 90 degrees
    azimuth, elevation = vector_to_angles((decoded[:, [3, 1, 2]] * decoded[:, :1]).sum(-1))
    assert float(azimuth) == pytest.approx(90.0, abs=0.2) and float(elevation) == pytest.approx(0.0, abs=0.2)
    with pytest.raises(ValueError, match="latent_channels must exceed 3"):
        dataclasses.replace(config, hop=96, latent_channels=3)


def test_direction_subframes_pan_each_part_of_a_frame_to_the_track_between_frame_centres(tmp_path: Path) -> None:
    # an untrained decoder's own x, y, z vary inside a latent frame; with the track imposed per latent frame that
    # variation survives in the frame's parts; with 4 subframes each part gets the track interpolated to its centre
    torch.manual_seed(0)
    config = dataclasses.replace(CODEC_PRESETS["tiny"], direction_subframes=4)
    fine = FOACodec(config).eval()
    coarse = FOACodec(CODEC_PRESETS["tiny"]).eval()
    coarse.load_state_dict(fine.state_dict())
    with torch.no_grad():
        latent = fine.encode(0.1 * torch.randn(1, 4, 12 * config.hop))
    frames = latent.shape[-1]
    azimuth = torch.linspace(90.0, -90.0, frames)
    track = DIRECTION_GAIN * direction_vector(azimuth, torch.zeros(frames)).T[None]  # (1, 3, L): a sweep
    latent[:, -3:] = fine.latent_normalizer.channels(slice(-3, None)).normalize(track)
    part = config.hop // 4
    expected = F.interpolate(track / DIRECTION_GAIN, scale_factor=4, mode="linear", align_corners=False)[..., 4:-4]

    def part_regression(decoded: torch.Tensor) -> torch.Tensor:  # no energy floor: the untrained decoder is quiet
        parts = decoded.reshape(1, 4, -1, part)
        return (parts[:, [3, 1, 2]] * parts[:, :1]).sum(-1) / parts[:, 0].square().sum(-1)

    with torch.no_grad():
        errors = {name: (part_regression(codec.decode(latent))[..., 4:-4] - expected).abs().max().item()
                  for name, codec in (("fine", fine), ("coarse", coarse))}
    assert errors["fine"] < 0.01
    assert errors["coarse"] > 0.1
    assert codec_fingerprint(fine) == codec_fingerprint(coarse)  # decode only: the same latent space
    assert FOACodec.from_pretrained(fine.save_pretrained(tmp_path / "fine")).config.direction_subframes == 4
    with pytest.raises(ValueError, match="direction_subframes must be a positive divisor of hop"):
        dataclasses.replace(config, direction_subframes=3)


def test_a_trained_codec_repurposes_three_latent_channels_as_direction_latents() -> None:
    torch.manual_seed(0)
    plain = FOACodec(dataclasses.replace(CODEC_PRESETS["tiny"], direction_latents=False)).eval()
    converted = FOACodec(plain.config).eval()
    converted.load_state_dict(plain.state_dict())
    converted.repurpose_as_direction_latents((1, 5, 2))
    assert converted.config.direction_latents
    foa = 0.1 * torch.randn(1, 4, 1024)
    order = [0, 3, 4, 6, 7, 1, 5, 2]
    with torch.no_grad():
        before, after = plain.encode(foa), converted.encode(foa)
        torch.testing.assert_close(after[:, :-3], before[:, order[:-3]])
        # the decoder network ignores the new channels: it gives what the old one gave with them at zero
        silenced = before.clone()
        silenced[:, [1, 5, 2]] = 0.0
        torch.testing.assert_close(converted.decoder(after), plain.decoder(silenced), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="without direction latents"):
        converted.repurpose_as_direction_latents((0, 1, 2))
    with pytest.raises(ValueError, match="3 distinct latent channels"):
        plain.repurpose_as_direction_latents((0, 0, 1))


def test_encode_mean_is_deterministic_and_sampling_is_seeded() -> None:
    codec = tiny_codec()
    foa = 0.1 * torch.randn(2, 4, 1000)
    with torch.no_grad():
        assert torch.equal(codec.encode(foa), codec.encode(foa))
        s1 = codec.encode(foa, sample=True, generator=torch.Generator().manual_seed(1))
        s2 = codec.encode(foa, sample=True, generator=torch.Generator().manual_seed(1))
        assert torch.equal(s1, s2) and not torch.equal(s1, codec.encode(foa))


def test_latent_scale_gives_unit_variance() -> None:
    codec = tiny_codec()
    clips = [0.1 * torch.randn(2, 4, 2048) for _ in range(3)]
    codec.set_latent_scale(measure_latent_scale(codec, clips))
    with torch.no_grad():
        assert torch.cat([codec.encode(c) for c in clips]).std().item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda: torch.zeros(1, 2, 100), {}, r"stereo audio .* expected 4-channel FOA \(AmbiX W, Y, Z, X\)"),
        (lambda: torch.zeros(1, 4, 100), {"sample_rate": 44100}, "44100 Hz given, but 8000 Hz expected"),
        (lambda: torch.full((1, 4, 100), float("nan")), {}, "NaN or Inf"),
        (lambda: torch.tensor([[[0.0, float("inf")]] * 4]), {}, "NaN or Inf"),
        (lambda: torch.zeros(1, 4, 0), {}, "empty audio"),
        (lambda: torch.zeros(1, 4, 100, dtype=torch.int16), {}, "expected float audio .* got dtype torch.int16"),
    ],
    ids=["channels", "sample_rate", "nan", "inf", "empty", "int16"],
)
def test_bad_input_is_rejected_with_a_clear_message(make, kwargs, message) -> None:
    with pytest.raises(CodecInputError, match=message) as caught:
        tiny_codec().encode(make(), **kwargs)
    assert isinstance(caught.value, FOAInputError)  # the one FOA check, shared with ELSA and the metrics


def test_bad_latent_and_foreign_folders_are_rejected(tmp_path: Path) -> None:
    codec = tiny_codec()
    with pytest.raises(CodecInputError, match=r"\(batch, 8, frames\)"):
        codec.decode(torch.zeros(1, 3, 5))
    codec.save_pretrained(tmp_path / "other")
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    (tmp_path / "other" / "config.json").write_text(json.dumps({**config, "_format": "soundstage.elsa"}))
    with pytest.raises(FormatError, match="'soundstage.elsa' model, not a 'soundstage.codec'"):
        FOACodec.from_pretrained(tmp_path / "other")
    with pytest.raises(FormatError, match="no config.json"):
        FOACodec.from_pretrained(tmp_path / "missing")


def test_spatial_loss_is_zero_for_identical_input_and_grows_with_rotation() -> None:
    rng = np.random.default_rng(0)
    foa = torch.from_numpy(np.stack([synthetic_foa(rng, 1.0, 8000, az, 10.0) for az in (30.0, -120.0)]))
    assert float(spatial_loss(foa, foa)) == pytest.approx(0.0, abs=1e-5)
    losses = [float(spatial_loss(rotate_foa(foa, yaw_deg=yaw), foa)) for yaw in (10.0, 45.0, 90.0, 180.0)]
    assert losses[0] > 1e-3 and all(a < b for a, b in itertools.pairwise(losses))
    # intensity vectors: |I_a - I_b| of equal-length vectors 90 and 180 degrees apart are sqrt(2) and 2 times |I|
    same, quarter, half = (spatial_terms(rotate_foa(foa, yaw_deg=y), foa) for y in (0.0, 90.0, 180.0))
    for name in ("intensity_vector", "broadband"):
        assert float(same[name]) == pytest.approx(0.0, abs=1e-5)
        assert float(half[name]) / float(quarter[name]) == pytest.approx(math.sqrt(2.0), rel=0.02)
    assert 0.5 < float(half["intensity_vector"]) <= 2.0
    # loudness alone does not change the sound field
    assert float(spatial_loss(0.5 * foa, foa)) < 1e-3


def test_band_energy_loss_measures_level_in_log10_units() -> None:
    foa = 0.1 * torch.randn(2, 4, 8000)
    assert float(band_energy_loss(foa, foa)) == 0.0
    assert float(band_energy_loss(0.5 * foa, foa)) == pytest.approx(math.log10(4.0), abs=1e-4)  # -6 dB everywhere
    long_term = band_energy_loss(0.5 * foa, foa, region_frames=None)
    assert float(long_term) == pytest.approx(math.log10(4.0), abs=1e-4)


def test_stft_log_eps_decides_how_much_a_noise_floor_in_silence_costs() -> None:
    """With auraloss's default eps a faint noise floor where the input is silent outweighs a tone 6 dB too quiet;
    with eps 1e-3 it costs next to nothing and the level error dominates."""
    t = torch.arange(8000) / 8000
    tone = torch.sin(2 * math.pi * 500 * t)[None, None] * 0.14
    floor = 1e-4 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0))

    def costs(eps: float) -> tuple[float, float]:
        loss = MultiChannelSTFTLoss((512, 128), 0.5, log_eps=eps)
        return float(loss(tone + floor, tone)), float(loss(0.5 * tone, tone))

    noisy, quiet = costs(1e-8)
    assert noisy > quiet
    noisy, quiet = costs(1e-3)
    assert noisy < 0.1 * quiet


def test_log_mel_loss_forgives_a_partial_one_bin_off_more_than_mrstft_does() -> None:
    """Cost of a 1-kHz tone one 2048-point bin off, relative to leaving the tone out (the docstring's 17 % vs 7 %)."""
    sr = 24000
    t = torch.arange(sr) / sr

    def tone(hz: float) -> torch.Tensor:
        return (0.1 * torch.sin(2 * math.pi * hz * t)).expand(1, 4, -1).clone()

    target, silence = tone(1000.0), 1e-4 * torch.randn(1, 4, sr, generator=torch.Generator().manual_seed(0))
    mel, mrstft = LogMelLoss(sr), MultiChannelSTFTLoss((2048, 512, 128), 0.5)
    assert float(mel(target, target)) == 0.0
    near = 1000.0 + sr / 2048
    mel_ratio = float(mel(tone(near), target)) / float(mel(silence, target))
    mrstft_ratio = float(mrstft(tone(near), target)) / float(mrstft(silence, target))
    assert mel_ratio < 0.09 and mrstft_ratio > 0.14


def test_partial_level_loss_reads_the_input_partials_in_log10_power_units() -> None:
    sr = 24000
    t = torch.arange(sr) / sr

    def note(hz: float) -> torch.Tensor:
        w = sum(0.1 / k * torch.sin(2 * math.pi * hz * k * t) for k in range(1, 6))
        return w[None, None] * torch.tensor([1.0, 0.5, 0.3, 0.1])[None, :, None]

    target = note(220.0)
    assert float(partial_level_loss(target, target, sr)) == 0.0
    assert float(partial_level_loss(0.5 * target, target, sr)) == pytest.approx(math.log10(4.0), abs=0.02)
    assert float(partial_level_loss(note(220.0 * 1.06), target, sr)) > 1.0  # a semitone sharp: > 10 dB off
    noise = 0.1 * torch.randn(1, 4, sr, generator=torch.Generator().manual_seed(0))
    assert float(partial_level_loss(0.1 * noise, noise, sr)) == 0.0  # no periodic frame: nothing to compare


def test_level_loss_sees_a_loud_band_low_that_the_band_terms_average_away() -> None:
    sr = 8000
    t = torch.arange(sr) / sr
    low, high = torch.sin(2 * math.pi * 200 * t), 0.01 * torch.sin(2 * math.pi * 2000 * t)
    target = (low + high).expand(1, 4, -1).clone()
    pred = (0.5 * low + 2.0 * high).expand(1, 4, -1).clone()  # loud band -6 dB, quiet band +6 dB
    assert float(level_loss(target, target)) == 0.0
    assert float(level_loss(pred, target)) == pytest.approx(math.log10(4.0), abs=0.01)  # the clip is 6 dB quiet
    assert float(level_loss(0.5 * target, target)) == pytest.approx(math.log10(4.0), abs=1e-4)
    silent_z = target.clone()
    silent_z[:, 1] = 0.0
    assert float(level_loss(silent_z, target)) > 1.0  # a lost channel counts, up to the 60 dB floor


def test_codec_loss_terms_are_finite_and_kl_is_zero_at_the_prior() -> None:
    codec = tiny_codec()
    foa = torch.from_numpy(synthetic_foa(np.random.default_rng(1), 0.5, 8000, 45.0, 0.0))[None]
    recon, mean, std = codec(foa)
    loss, logs = CodecLoss()(recon, foa, mean, std)
    assert torch.isfinite(loss) and set(logs) == {"loss_stft", "loss_band_energy", "loss_long_term_band", "loss_level",
                                                  "loss_direction", "loss_diffuseness", "loss_intensity_vector",
                                                  "loss_broadband", "loss_kl"}
    assert float(kl_loss(torch.zeros(1, 4, 3), torch.ones(1, 4, 3))) == pytest.approx(0.0)
    with_mel = CodecLoss(dataclasses.replace(CodecLossConfig(), mel_weight=2.0), sample_rate=8000)
    total, logs = with_mel(recon, foa, mean, std)
    assert float(total) == pytest.approx(float(loss) + 2.0 * logs["loss_mel"], rel=1e-5)


def test_train_cli_passes_loss_and_model_overrides_to_the_task(tiny_data: Path, tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    from soundstage import cli
    from soundstage.train import codec_task

    seen = {}

    def fake_make(preset, data, config, loss_config=None, model_config=None, data_config=None):
        seen.update(loss=loss_config, model=model_config, data=data_config, train_only=config.train_only)
        raise SystemExit(0)

    monkeypatch.setattr(codec_task, "make_codec_task", fake_make)
    with pytest.raises(SystemExit):
        cli.main(["train", "codec", "--preset", "tiny", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
                  "--loss", "broadband_weight=2.5", "--set", "direction_latents=false", "--train-only", "decoder.",
                  "--data-option", "pitched_fraction=0.3"])
    assert seen["loss"].broadband_weight == 2.5 and seen["train_only"] == ("decoder.",)
    assert seen["data"] == dataclasses.replace(CODEC_DATA_DEFAULTS["tiny"], pitched_fraction=0.3)
    assert seen["model"] == dataclasses.replace(CODEC_PRESETS["tiny"], direction_latents=False)
    run = ["train", "codec", "--preset", "tiny", "--data", str(tiny_data), "--out", str(tmp_path / "run")]
    assert cli.main([*run, "--set", "latent_channels=many"]) == 2
    assert "model option latent_channels needs an int value, got 'many'" in capsys.readouterr().err
    assert cli.main([*run, "--set", "latent_channels=4"]) == 2
    assert "4 * hop / latent_channels must be 128" in capsys.readouterr().err  # the config's own check
    assert cli.main(["train", "elsa", "--preset", "tiny", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
                     "--loss", "broadband_weight=2.5"]) == 2
    assert "--loss sets codec loss weights (CodecLossConfig); elsa has none to set" in capsys.readouterr().err
    assert cli.main([*run, "--data-option", "pitched_fraction=2"]) == 2
    assert "pitched_fraction must lie in [0, 1]" in capsys.readouterr().err


def test_pitched_fraction_mixes_synthetic_pitched_crops_into_training(tiny_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(out_dir=tmp_path / "run", **CODEC_TRAIN_DEFAULTS["tiny"])
    plain = make_codec_task("tiny", tiny_data, config)
    mixed = make_codec_task("tiny", tiny_data, config,
                            data_config=dataclasses.replace(CODEC_DATA_DEFAULTS["tiny"], pitched_fraction=1.0))
    assert mixed.train_dataset[0].shape == plain.train_dataset[0].shape
    assert not torch.equal(mixed.train_dataset[0], plain.train_dataset[0])


def test_calibrate_cli_writes_a_calibrated_copy(tiny_data: Path, tmp_path: Path, capsys) -> None:
    from soundstage import cli

    tiny_codec().save_pretrained(tmp_path / "codec")
    assert cli.main(["calibrate", "codec", "--model", str(tmp_path / "codec"), "--data", str(tiny_data),
                     "--out", str(tmp_path / "calibrated")]) == 0
    assert "output equaliser, dB:" in capsys.readouterr().out
    calibrated = FOACodec.from_pretrained(tmp_path / "calibrated")
    clips = [torch.from_numpy(load_audio(tiny_data / r["path"], sample_rate=8000, channels=4)[0])
             for r in split_records(tiny_data, "valid")]
    expected = calibrate_output_eq(tiny_codec(), clips)  # the CLI is the library function on the valid split
    assert calibrated.config.output_eq_db == tuple(expected["db"])
    assert FOACodec.from_pretrained(tmp_path / "codec").config.output_eq_db == ()  # the source is left alone
    report = json.loads((tmp_path / "calibrated" / "calibration.json").read_text())
    stats = report["latent_statistics"]["channels"]
    assert calibrated.config.latent_mean == tuple(c["mean"] for c in stats) and len(stats) == 8
    assert calibrated.config.latent_std == tuple(c["std"] for c in stats) and min(calibrated.config.latent_std) > 0
    with pytest.raises(SystemExit) as exit_status:  # refused by argparse (common/validate.py) before any work
        cli.main(["calibrate", "codec", "--model", str(tmp_path / "codec"), "--data", str(tiny_data),
                  "--split", "test", "--max-clips", "0", "--out", str(tmp_path / "none")])
    assert exit_status.value.code == 2 and not (tmp_path / "none").exists()
    assert "argument --max-clips: expected a whole number >= 1, got '0'" in capsys.readouterr().err


def _config(out: Path, steps: int) -> TrainConfig:
    values = dict(CODEC_TRAIN_DEFAULTS["tiny"])
    values.update(max_steps=steps, checkpoint_every=2, validate_every=100)
    return TrainConfig(out_dir=out, **values)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("foa_data"), sample_rate=8000)


def test_the_tone_gate_stops_a_run_whose_tones_do_not_come_back(tiny_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(out_dir=tmp_path / "run", **CODEC_TRAIN_DEFAULTS["tiny"])
    gated = dataclasses.replace(CODEC_DATA_DEFAULTS["tiny"], tone_gate_step=10, tone_gate_db=-1.0)
    task = make_codec_task("tiny", tiny_data, config, data_config=gated)
    metrics = task.validate(task.model, step=9, writer=None)  # before the gate step: measured, not judged
    assert metrics["steady_tone_level_error_db"] < -1.0  # an untrained codec returns next to nothing
    with pytest.raises(ToneGateError, match=r"stopped at step 10: .* \(gate: -1.0 dB by step 10\)"):
        task.validate(task.model, step=10, writer=None)


def test_two_step_training_smoke_test_exports_a_loadable_codec(tiny_data: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "run", 2)
    task = make_codec_task("tiny", tiny_data, config)
    codec = FOACodec.from_pretrained(run_training(task, config))
    # measured on the validation crops at the final validation, before export: the exported weights give it again
    expected = measure_latent_scale(codec, task.valid_audio.split(8))
    assert codec.latent_scale.item() == pytest.approx(expected, rel=1e-5)
    log = (tmp_path / "run" / "train_log.jsonl").read_text()
    assert "angle_error_median_deg" in log and "loss_direction" in log and "spatial_loss_broadband" in log


class CrashingTask:
    """Wraps a codec task and dies at a given step, like a kill after the last checkpoint."""

    def __init__(self, task, crash_at_step: int) -> None:
        self.task, self.crash_at_step = task, crash_at_step
        self.name, self.model, self.train_dataset = task.name, task.model, task.train_dataset
        self.collate, self.validate, self.extra_state = task.collate, task.validate, task.extra_state
        self.setup = task.setup

    def training_step(self, model, batch, step):
        if step == self.crash_at_step:
            raise KeyboardInterrupt
        return self.task.training_step(model, batch, step)


@pytest.mark.slow
@pytest.mark.parametrize("adversarial", [False, True], ids=["plain", "adversarial"])
def test_resume_after_interruption_gives_identical_weights(tiny_data: Path, tmp_path: Path, adversarial: bool) -> None:

    def task(config: TrainConfig) -> CodecTask:
        return make_codec_task("tiny", tiny_data, config, CodecLossConfig(adversarial=adversarial))

    straight = run_training(task(_config(tmp_path / "a", 4)), _config(tmp_path / "a", 4))
    with pytest.raises(KeyboardInterrupt):
        config = _config(tmp_path / "b", 4)
        run_training(CrashingTask(task(config), 2), config)
    assert latest_checkpoint(tmp_path / "b").name == "step_2"
    config = _config(tmp_path / "b", 4)
    resumed = run_training(task(config), config, resume=True)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_plane_wave_direction_survives_the_stft_pair() -> None:
    """Physics guard for the decoder's W-relative head: rebuilding X, Y, Z as gains on W keeps the direction."""

    signal = torch.randn(8 * 128)
    foa = encode_mono(signal, 90.0, 20.0)[None]
    spec = stft_same(foa, 256, 128)[0]  # (4, F, N)
    gains = spec[1:] / spec[0]  # Y, Z, X relative to W
    rebuilt = torch.cat([spec[:1], gains * spec[0]])
    audio = istft_same(rebuilt, 256, 128)
    azimuth, elevation = broadband_doa(audio)
    assert float(azimuth) == pytest.approx(90.0, abs=0.5) and float(elevation) == pytest.approx(20.0, abs=0.5)


def test_adversarial_flag_adds_discriminator_terms(tiny_data: Path, tmp_path: Path) -> None:

    task = make_codec_task("tiny", tiny_data, _config(tmp_path, 1), CodecLossConfig(adversarial=True))
    batch = task.collate([task.train_dataset[i] for i in range(2)])
    loss, logs = task.training_step(task.model, batch, 0)
    assert torch.isfinite(loss) and {"loss_disc", "loss_adv", "loss_feature_matching"} <= set(logs)
    assert make_codec_task("tiny", tiny_data, _config(tmp_path, 1)).discriminator is None  # off by default


class _RotatingCodec:
    """Stands in for a codec whose reconstruction is the input turned 30 degrees to the left and 6 dB quieter."""

    sample_rate, hop = 8000, 256

    def encode(self, foa: torch.Tensor) -> torch.Tensor:
        return foa

    def decode(self, latent: torch.Tensor, length: int) -> torch.Tensor:
        return 0.5 * rotate_foa(latent, yaw_deg=30.0)[..., :length]


def test_clip_periodicity_tells_a_tone_from_noise_and_shares_split_pitched_clips() -> None:
    from soundstage.codec.evaluate import clip_periodicity, level_shares

    sr, hop = 24000, 512
    t = torch.arange(sr) / sr
    tone = 0.1 * torch.sin(2 * math.pi * 330.0 * t)
    noise = 0.1 * torch.randn(sr, generator=torch.Generator().manual_seed(0))
    assert clip_periodicity(tone, sr, hop) > 0.9 and clip_periodicity(noise, sr, hop) < 0.3
    half_silent = torch.cat((tone[: sr // 2], torch.zeros(sr // 2)))
    assert clip_periodicity(half_silent, sr, hop) > 0.9  # silence does not count
    clips = [{"class": "bell", "input_periodicity": 0.95, "w_level_error_db": -5.0},
             {"class": "bell", "input_periodicity": 0.9, "w_level_error_db": -1.0},
             {"class": "rain", "input_periodicity": 0.1, "w_level_error_db": 0.5}]
    shares = level_shares(clips)
    assert (shares["pitched_clips"], shares["w_level_within_3db_fraction_pitched"]) == (2, 0.5)
    assert (shares["unpitched_clips"], shares["w_level_within_3db_fraction_unpitched"]) == (1, 1.0)
    assert shares["w_level_within_3db_fraction"] == pytest.approx(2 / 3)
    assert shares["by_class"]["bell"]["w_level_error_db_median"] == -3.0


def test_evaluate_codec_measures_a_known_rotation_and_writes_json_plot_and_examples(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundstage.codec import evaluate as codec_evaluate

    monkeypatch.setattr(codec_evaluate.FOACodec, "from_pretrained", lambda *a, **k: _RotatingCodec())
    out = tmp_path / "eval" / "test.json"
    result = codec_evaluate.evaluate_codec("fake", tiny_data, split="test", out_json=out, examples=1)
    s = result["summary"]
    assert result["clips_evaluated"] == 2
    # a 30-degree yaw moves a source at elevation e by the great-circle angle 2 asin(cos(e) sin(15 deg))
    elevations = {r["path"]: r["elevation_deg"] for r in read_manifest(tiny_data)}
    for clip in result["clips"]:
        expected = math.degrees(2 * math.asin(math.cos(math.radians(elevations[clip["path"]])) * math.sin(math.radians(15))))
        assert clip["angle_error_deg"] == pytest.approx(expected, abs=1.0)
        assert 0.0 < clip["input_diffuseness"] < 0.5  # a plane wave plus a weaker diffuse tail
    assert s["w_band_error_db_median"] == pytest.approx(6.02, abs=1e-2)  # level errors are measured ...
    assert s["w_band_bias_db_median"] == pytest.approx(-6.02, abs=1e-2)  # ... with their sign: too quiet
    assert s["w_level_error_db_mean"] == pytest.approx(-6.02, abs=1e-2)  # and so is the whole-clip level
    assert s["si_sdr_db_W_median"] > 60.0  # and SI-SDR ignores the gain
    assert s["w_level_within_3db_fraction"] == 0.0
    assert list(result["steady_tones"]) == ["100_hz", "250_hz", "1000_hz"]  # 4 kHz is the Nyquist frequency at 8 kHz
    note = result["harmonic_note"]
    assert note["level_error_db"] == pytest.approx(-6.02, abs=0.01)
    assert note["angle_error_deg"] == pytest.approx(30.0, abs=0.5)
    for tone in result["steady_tones"].values():  # the steady tones at azimuth 60, elevation 0: turned by 30 deg
        assert tone["level_error_db"] == pytest.approx(-6.02, abs=0.01)
        assert tone["angle_error_deg"] == pytest.approx(30.0, abs=0.5)
    targets = result["targets"]
    assert targets["angle_error_deg_median"]["met"] is False and targets["w_level_within_3db_fraction"]["met"] is False
    assert targets["tones_and_note_level_error_db_abs_max"]["value"] == pytest.approx(6.02, abs=0.01)
    assert s["pitched_clips"] + s["unpitched_clips"] == 2
    assert set(result["classes"]) == {c["class"] for c in result["clips"]} - {""}  # per class where clips have one
    assert "W level within 3 dB: 0.0%" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["summary"] == pytest.approx(s) and len(saved["clips"]) == 2
    assert out.with_suffix(".png").stat().st_size > 0
    examples = sorted((tmp_path / "eval" / "test_examples").glob("*.wav"))
    assert [p.name.split("_")[-1] for p in examples] == ["input.wav", "reconstruction.wav"]
