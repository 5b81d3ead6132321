"""The pipeline with tiny dummy components: shapes, seeds, guidance, the direction lock measured on the decoded audio,
trajectories, init audio, loading and every refused input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from soundstage.codec import FOACodec, codec_fingerprint
from soundstage.codec.direction_latents import frame_direction
from soundstage.common.errors import SoundstageError
from soundstage.dit import SpatialDiT, dit_preset
from soundstage.foa import (
    angle_between_deg,
    broadband_doa,
    direction_vector,
    encode_mono,
    framewise_doa,
    great_circle_deg,
    vector_to_angles,
)
from soundstage.sample import GenerationError, SoundstagePipeline, parse_trajectory, trajectory_vectors
from soundstage.sample.direction import lock_direction, track_directions

from .tiny_models import save_generation_folder, tiny_components

FAST = {"steps": 4, "progress": False}


def test_output_shape_dtype_length_and_unpacking(pipe: SoundstagePipeline) -> None:
    result = pipe("a dog barks", azimuth_deg=30.0, seconds=1.3, batch_size=2, seed=5, **FAST)
    foa, sample_rate = result
    assert sample_rate == pipe.sample_rate == 8000
    assert foa.shape == (2, 4, round(1.3 * 8000)) and foa.dtype == torch.float32 and torch.isfinite(foa).all()
    assert result.seeds == [5, 6] and result.requested.mode == "parametric"
    assert set(result.timings) == {"conditioning", "dit", "decode"}
    default = pipe("a dog barks", **FAST)
    assert default.requested.seconds == pipe.max_seconds == 2.0 and default.requested.mode == "descriptive"
    assert default.seeds[0] >= 0  # drawn and reported


def test_seeds_reproduce_and_differ(pipe: SoundstagePipeline) -> None:
    a = pipe("rain on a tin roof", t30_s=0.4, seed=3, **FAST).foa
    assert torch.equal(a, pipe("rain on a tin roof", t30_s=0.4, seed=3, **FAST).foa)
    assert not torch.allclose(a, pipe("rain on a tin roof", t30_s=0.4, seed=4, **FAST).foa)
    pair = pipe("rain on a tin roof", t30_s=0.4, seed=3, batch_size=2, **FAST).foa
    assert not torch.allclose(pair[0], pair[1])
    assert torch.allclose(pair[1], pipe("rain on a tin roof", t30_s=0.4, seed=4, **FAST).foa[0], atol=1e-5)


def test_conditions_reach_the_model_and_cfg_one_ignores_the_negative_prompt(pipe: SoundstagePipeline) -> None:
    base = pipe("a dog barks", distance_m=1.0, seed=0, cfg_scale=3.0, **FAST).latent
    assert not torch.allclose(base, pipe("a car horn", distance_m=1.0, seed=0, cfg_scale=3.0, **FAST).latent)
    assert not torch.allclose(base, pipe("a dog barks", distance_m=3.0, seed=0, cfg_scale=3.0, **FAST).latent)
    negative = pipe("a dog barks", distance_m=1.0, seed=0, cfg_scale=3.0, negative_prompt="music", **FAST).latent
    assert not torch.allclose(base, negative)
    one = pipe("a dog barks", distance_m=1.0, seed=0, cfg_scale=1.0, **FAST).latent
    assert torch.equal(one, pipe("a dog barks", distance_m=1.0, seed=0, cfg_scale=1.0, negative_prompt="music",
                                 **FAST).latent)


def test_descriptive_prompt_words_lock_the_track_unless_the_lock_is_off(pipe: SoundstagePipeline) -> None:
    norm = pipe.codec.latent_normalizer
    locked = pipe("a dog barks behind me on the left", seed=2, **FAST)
    assert locked.requested.mode == "descriptive"
    assert angle_between_deg(track_directions(locked.latent, norm), direction_vector(135.0, 0.0)).max() < 0.01
    free = pipe("a dog barks behind me on the left", seed=2, direction_lock=False, **FAST)
    assert angle_between_deg(track_directions(free.latent, norm), direction_vector(135.0, 0.0)).median() > 10


def test_azimuth_is_wrapped(pipe: SoundstagePipeline) -> None:
    wrapped = pipe("a bell", azimuth_deg=450.0, seed=1, **FAST)
    assert wrapped.requested.azimuth_deg == 90.0 and wrapped.requested.elevation_deg == 0.0
    assert torch.equal(wrapped.foa, pipe("a bell", azimuth_deg=90.0, elevation_deg=0.0, seed=1, **FAST).foa)


def test_direction_lock_sets_the_track_and_the_decoded_direction(pipe: SoundstagePipeline) -> None:
    result = pipe("a dog barks", azimuth_deg=60.0, elevation_deg=20.0, seconds=1.6, seed=0, **FAST)
    target = direction_vector(60.0, 20.0)
    assert angle_between_deg(track_directions(result.latent, pipe.codec.latent_normalizer), target).max() < 0.01
    # the codec's contract: each latent frame's regression of x, y, z on W is the track, so the W-energy-weighted
    # frame direction is the request exactly
    d = frame_direction(result.foa, pipe.codec.hop)[0]
    energy = result.foa[0, 0].reshape(-1, pipe.codec.hop).square().sum(-1)
    assert angle_between_deg((d * energy).sum(-1), target) < 0.05
    # the STFT estimator: with 75 % overlap (constant overlap-add of Hann^2) it agrees to ~1 deg; at its default
    # 50 % overlap the window weighting ripples with a 256-sample period, the tiny codec's hop, which biases it
    assert great_circle_deg(*broadband_doa(result.foa, hop_length=128), 60.0, 20.0).item() < 1.5
    assert great_circle_deg(*broadband_doa(result.foa), 60.0, 20.0).item() < 7.0
    free = pipe("a dog barks", azimuth_deg=60.0, elevation_deg=20.0, seconds=1.6, seed=0, direction_lock=False, **FAST)
    free_track = track_directions(free.latent, pipe.codec.latent_normalizer)
    assert angle_between_deg(free_track, target).median() > 10  # untrained: no direction of its own


def test_trajectory_drives_the_track_frame_by_frame(pipe: SoundstagePipeline) -> None:
    result = pipe("a bee", trajectory="0:90:0,1.5:-90:0", seconds=2.0, seed=2, **FAST)
    frames = result.latent.shape[-1]
    expected = trajectory_vectors(parse_trajectory("0:90:0,1.5:-90:0"), frames, 8000 / 256)
    assert angle_between_deg(track_directions(result.latent, pipe.codec.latent_normalizer)[0], expected).max() < 0.01
    azimuth, elevation = result.requested.direction  # the centre of the clip (1 s): 90 - 180 / 1.5 = -30 deg
    assert azimuth == pytest.approx(-30.0, abs=1e-3) and elevation == pytest.approx(0.0, abs=1e-4)


def test_trajectory_is_sampled_static_at_its_centre_and_turned_at_the_end(pipe: SoundstagePipeline) -> None:
    # the same numbers (the centre direction), seed and steps as a static request: the same scene, only turned
    moving = pipe("a bee", trajectory="0:90:0,1.5:-90:0", seconds=2.0, seed=2, **FAST)
    static = pipe("a bee", azimuth_deg=-30.0, elevation_deg=0.0, seconds=2.0, seed=2, **FAST)
    path = trajectory_vectors(parse_trajectory("0:90:0,1.5:-90:0"), moving.latent.shape[-1], 8000 / 256)
    turned = lock_direction(static.latent, path, pipe.codec.latent_normalizer)
    assert torch.allclose(moving.latent, turned, atol=1e-4)
    assert not torch.allclose(moving.latent[:, -3:], static.latent[:, -3:], atol=1e-2)


def bundled_codec_pipeline() -> SoundstagePipeline:
    codec = FOACodec.from_pretrained("small")
    config = dit_preset("tiny")
    config.codec_fingerprint = codec_fingerprint(codec)
    torch.manual_seed(0)
    dit = SpatialDiT(config).eval()
    with torch.no_grad():
        for parameter in dit.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.3)
    return SoundstagePipeline(codec, dit)


def test_bundled_codec_imposes_direction_and_sweep_on_the_audio() -> None:
    pipe = bundled_codec_pipeline()
    still = pipe("a dog barks", azimuth_deg=-120.0, elevation_deg=-15.0, seconds=1.0, seed=0, **FAST)
    assert great_circle_deg(*broadband_doa(still.foa), -120.0, -15.0).item() < 1.0
    sweep = pipe("a dog barks", trajectory="0:90:0,2:-90:0", seconds=2.0, seed=0, **FAST)
    azimuth, elevation, energy = framewise_doa(sweep.foa)  # STFT frame i centred at i * 256 samples
    frames = azimuth.shape[-1]
    half_frame = 0.5 * 256 / pipe.sample_rate  # trajectory_vectors samples (i + 0.5) / rate: shift the keyframes
    expected = trajectory_vectors(parse_trajectory(f"{half_frame}:90:0,{2 + half_frame}:-90:0"), frames,
                                  pipe.sample_rate / 256)
    error = angle_between_deg(direction_vector(azimuth[0], elevation[0]), expected)
    loud = energy[0] > energy[0].max() * 1e-3  # within 30 dB of the loudest frame
    assert error[loud].median() < 4.0


def test_init_audio_mono_is_placed_at_the_request_and_kept_at_low_strength(pipe: SoundstagePipeline) -> None:
    rng = np.random.default_rng(0)
    mono = rng.standard_normal(16000).astype(np.float32) * 0.3  # 1 s at 16 kHz, resampled to the codec's 8 kHz
    near = pipe("noise", azimuth_deg=45.0, seconds=1.0, seed=0, direction_lock=False, init_audio=mono,
                init_sample_rate=16000, init_strength=0.05, **FAST)
    far = pipe("noise", azimuth_deg=45.0, seconds=1.0, seed=0, direction_lock=False, init_audio=mono,
               init_sample_rate=16000, init_strength=1.0, **FAST)
    encoded = pipe.codec.encode(encode_mono(torch.from_numpy(mono[::2].copy()), 45.0, 0.0)[None])
    assert (near.latent - encoded).norm() < 0.2 * (far.latent - encoded).norm()
    azimuth, elevation = vector_to_angles(track_directions(near.latent, pipe.codec.latent_normalizer)[0].sum(0))
    assert great_circle_deg(azimuth, elevation, 45.0, 0.0).item() < 5.0
    with pytest.raises(GenerationError, match="init_audio must be"):
        pipe("noise", azimuth_deg=45.0, init_audio=np.zeros((3, 100), np.float32), **FAST)


def test_progress_callable_and_heun(pipe: SoundstagePipeline) -> None:
    calls: list[tuple[int, int]] = []
    pipe("a dog barks", elevation_deg=10.0, steps=3, sampler="heun", seed=0, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_descriptive_mode_uses_elsa_and_needs_it(pipe: SoundstagePipeline) -> None:
    a = pipe("a dog barks on the left", seed=0, cfg_scale=3.0, **FAST).latent
    b = pipe("a dog barks on the right", seed=0, cfg_scale=3.0, **FAST).latent
    assert not torch.allclose(a, b)
    codec, dit, _ = tiny_components()
    with pytest.raises(GenerationError, match="descriptive mode needs"):
        SoundstagePipeline(codec, dit)("a dog barks on the left", **FAST)


@pytest.mark.parametrize(("options", "message"), [
    ({"azimuth_deg": math.nan}, "azimuth_deg must be a finite number"),
    ({"azimuth_deg": math.inf}, "azimuth_deg must be a finite number"),
    ({"elevation_deg": 91.0}, r"elevation_deg must be in \[-90, 90\]"),
    ({"distance_m": 0.0}, "distance_m must be > 0"),
    ({"floor_area_m2": -5.0}, "floor_area_m2 must be > 0"),
    ({"t30_s": 0.0}, "t30_s must be > 0"),
    ({"seconds": 0.0}, "seconds must be > 0"),
    ({"seconds": 2.5}, "seconds must be <= 2, this model's maximum"),
    ({"seconds": math.nan}, "seconds must be a finite number"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"cfg_scale": -1.0}, "cfg_scale must be >= 0"),
    ({"prompt": "  "}, "prompt is empty"),
    ({"trajectory": "0:90"}, "trajectory keyframe 1"),
    ({"trajectory": "2:0:0,1:90:0"}, "keyframe 2 .*increase strictly"),
    ({"trajectory": "0:0:0", "azimuth_deg": 10.0}, "either a trajectory or azimuth"),
    ({"mode": "descriptive", "azimuth_deg": 10.0}, "descriptive mode takes"),
    ({"mode": "loud"}, "mode must be one of"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"init_strength": 0.0}, r"init_strength must be in \(0, 1\]"),
    ({"sampler": "ddim"}, "sampler must be one of"),
    ({"azimuth_deg": "left"}, "azimuth_deg must be a number"),
])
def test_bad_input_is_one_clear_error(pipe: SoundstagePipeline, options: dict, message: str) -> None:
    options = {**FAST, **options}
    prompt = options.pop("prompt", "a dog barks")
    with pytest.raises(GenerationError, match=message) as info:
        pipe(prompt, **options)
    assert isinstance(info.value, SoundstageError) and isinstance(info.value, ValueError)


def test_from_pretrained_loads_a_generation_folder_and_refuses_another_codec(
        pipe: SoundstagePipeline, tmp_path: Path) -> None:
    folder = save_generation_folder(tmp_path / "model")  # the components of `pipe` (the same seed)
    loaded = SoundstagePipeline.from_pretrained(folder)
    assert loaded.model_hash == pipe.model_hash
    finer = SoundstagePipeline.from_pretrained(folder)
    finer.codec.config.direction_subframes = 8  # decode only: the DiT still pairs with it, but its clips differ
    assert finer.model_hash != pipe.model_hash
    assert torch.equal(loaded("a bell", azimuth_deg=10.0, seed=0, **FAST).foa,
                       pipe("a bell", azimuth_deg=10.0, seed=0, **FAST).foa)
    other_codec, _, _ = tiny_components(seed=1)
    other_codec.save_pretrained(folder / "codec")
    with pytest.raises(GenerationError, match=rf"{folder / 'dit'} was trained on the codec with fingerprint "
                                              rf"{pipe.dit.config.codec_fingerprint}, but {folder / 'codec'}"):
        SoundstagePipeline.from_pretrained(folder)
    with pytest.raises(GenerationError, match="the DiT was trained on the codec"):
        SoundstagePipeline(other_codec, pipe.dit)
    other_codec.save_pretrained(tmp_path / "partial" / "codec")
    with pytest.raises(GenerationError, match="no dit/ folder"):
        SoundstagePipeline.from_pretrained(tmp_path / "partial")
    with pytest.raises(GenerationError, match="no such model folder"):
        SoundstagePipeline.from_pretrained(tmp_path / "missing")
