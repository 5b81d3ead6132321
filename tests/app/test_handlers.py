"""The app's handlers as plain functions on the tiny pipeline: files, seeds, modes, moving sources, exact rotation,
refused values, init audio, the map click and the workspace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundstage.app import AppError, AppLimits, Workspace, generate_clips, rotate_clip
from soundstage.app.handlers import _init_audio, describe, details, file_stem, history_rows, picker_image
from soundstage.app.render import PICKER_SIZE, direction_energy, direction_to_pixel, pixel_to_direction
from soundstage.common.audio import AudioError
from soundstage.foa import direction_energy_map, encode_mono, great_circle_deg, rotate_foa
from soundstage.sample import GenerationError, SoundstagePipeline

FAST = {"seconds": 0.5, "steps": 2}


def test_generate_writes_every_output(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    steps: list[float] = []
    clips = generate_clips(tiny_pipe, workspace, AppLimits(), "A dog barks!", azimuth_deg=90.0, elevation_deg=10.0,
                           distance_m=2.0, t30_s=0.5, seed=7, variations=2,
                           progress=lambda fraction, _: steps.append(fraction), **FAST)
    assert [c.seed for c in clips] == [7, 8]
    assert steps == sorted(steps) and 0 < steps[0] and steps[-1] < 1
    for clip in clips:
        assert clip.ambix.name == f"a_dog_barks_seed{clip.seed}.wav"
        info = sf.info(str(clip.ambix))
        assert (info.channels, info.samplerate, info.subtype) == (4, tiny_pipe.sample_rate, "FLOAT")
        assert info.frames == round(FAST["seconds"] * tiny_pipe.sample_rate)
        for preview in (clip.binaural, clip.stereo):
            assert sf.info(str(preview)).channels == 2
        for picture in (clip.direction_map, clip.spectrogram):
            assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert clip.ambix.is_relative_to(workspace.root) and clip.original == clip.ambix
        assert clip.requested == {"requested": (90.0, 10.0)}
        assert set(clip.measured) == {"measured"} and set(clip.elsa or {}) == {
            "azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s"}
        assert clip.request["distance_m"] == 2.0 and clip.request["seed"] == clip.seed
    assert clips[0].ambix.parent != clips[1].ambix.parent  # a folder per clip: equal names never collide
    text = describe(clips[0])
    assert "seed 7" in text and "requested az +90.0, el +10.0" in text and "ELSA hears" in text
    assert details(clips[0])["files"]["ambix"] == "a_dog_barks_seed7.wav"


def test_same_seed_same_audio_and_random_seed_reported(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    a, b = (generate_clips(tiny_pipe, workspace, AppLimits(), "rain", seed=3, **FAST)[0] for _ in range(2))
    assert np.array_equal(sf.read(str(a.ambix))[0], sf.read(str(b.ambix))[0])
    drawn = generate_clips(tiny_pipe, workspace, AppLimits(), "rain", seed=-1, **FAST)[0].seed  # -1 = random
    assert isinstance(drawn, int) and drawn >= 0


def test_descriptive_mode_ignores_the_placement(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    clip = generate_clips(tiny_pipe, workspace, AppLimits(), "a dog barks on the left", mode="descriptive",
                          azimuth_deg=-90.0, distance_m=3.0, end_direction=(90.0, 0.0), seed=1, **FAST)[0]
    assert clip.mode == "descriptive" and clip.requested == {"requested": (90.0, 0.0)}  # the prompt's words
    assert clip.request["azimuth_deg"] is None and clip.request["trajectory"] is None
    assert "direction (named in the prompt): requested az +90.0, el +0.0" in describe(clip)
    wordless = generate_clips(tiny_pipe, workspace, AppLimits(), "a dog barks", mode="descriptive",
                              azimuth_deg=-90.0, seed=1, **FAST)[0]
    assert wordless.requested == {} and "the model's own" in describe(wordless)


def test_moving_source_is_a_trajectory_measured_at_both_ends(tiny_pipe: SoundstagePipeline,
                                                               workspace: Workspace) -> None:
    clip = generate_clips(tiny_pipe, workspace, AppLimits(), "a bee buzzes", azimuth_deg=90.0,
                          end_direction=(-90.0, 0.0), seed=2, seconds=1.0, steps=2)[0]
    assert clip.request["trajectory"] == "0:90:0,1:-90:0"
    assert set(clip.requested) == {"start", "end"} and set(clip.measured) == {"measured start", "measured end"}
    # The quarter-second windows' centres are 1/8 of the way in from each end of a 180-degree sweep via the front.
    assert clip.requested["start"][0] == pytest.approx(90 - 180 / 8, abs=0.01)
    assert clip.requested["end"][0] == pytest.approx(-90 + 180 / 8, abs=0.01)
    assert "start: requested" in describe(clip) and "end: requested" in describe(clip)


def test_rotation_is_exact_and_absolute(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    clip = generate_clips(tiny_pipe, workspace, AppLimits(), "a dog barks", azimuth_deg=30.0, seed=4, **FAST)[0]
    original = sf.read(str(clip.ambix), dtype="float32")[0].T
    turned = rotate_clip(tiny_pipe, workspace, clip, 90.0, 0.0, 0.0)
    assert turned.ambix.name == "a_dog_barks_seed4_rot90_0_0.wav" and turned.original == clip.ambix
    np.testing.assert_allclose(sf.read(str(turned.ambix), dtype="float32")[0].T, rotate_foa(original, 90.0), atol=1e-6)
    assert turned.requested_now["requested"] == pytest.approx((120.0, 0.0), abs=1e-4)
    measured, rotated = clip.measured["measured"], turned.measured["measured"]
    assert float(great_circle_deg(measured[0] + 90.0, measured[1], *rotated)) < 0.01
    assert turned.spectrogram == clip.spectrogram  # W does not change, so neither does its picture
    # Angles are absolute, from the original: rotating the rotated clip back to 0 gives the original samples.
    back = rotate_clip(tiny_pipe, workspace, turned, 0.0, 0.0, 0.0)
    assert back.ambix.name == "a_dog_barks_seed4.wav"
    np.testing.assert_array_equal(sf.read(str(back.ambix), dtype="float32")[0].T, original)
    with pytest.raises(AppError, match="finite"):
        rotate_clip(tiny_pipe, workspace, clip, float("nan"), 0.0, 0.0)


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"prompt": "  "}, AppError, "the prompt is empty"),
    ({"mode": "sideways"}, AppError, "mode must be one of parametric, descriptive"),
    ({"steps": 101}, AppError, "steps must be a whole number from 1 to 100"),
    ({"steps": 2.5}, AppError, "steps must be a whole number"),
    ({"variations": 0}, AppError, "variations must be a whole number from 1 to 4"),
    ({"variations": float("nan")}, AppError, "variations must be a whole number"),
    ({"variations": "two"}, AppError, "variations must be a whole number"),
    ({"elevation_deg": 120.0}, GenerationError, r"elevation_deg must be in \[-90, 90\]"),
    ({"seconds": 60.0}, GenerationError, "this model's maximum"),
    ({"distance_m": -1.0}, GenerationError, "distance_m must be > 0"),
    ({"seed": -5}, GenerationError, "seed must be >= 0"),
    ({"init_strength": 0.0}, GenerationError, r"init_strength must be in \(0, 1\]"),
])
def test_bad_values_are_refused_with_a_message(tiny_pipe: SoundstagePipeline, workspace: Workspace,
                                               options: dict, error: type, message: str) -> None:
    values = {"prompt": "a dog barks", **FAST, **options}
    with pytest.raises(error, match=message):
        generate_clips(tiny_pipe, workspace, AppLimits(), **values)
    assert not any(workspace.clips.iterdir())  # nothing rendered for a refused request


def test_init_audio_files(tiny_pipe: SoundstagePipeline, workspace: Workspace, tmp_path: Path) -> None:
    rate = tiny_pipe.sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    foa = encode_mono(tone, 45.0, 0.0)
    for name, audio, expected in (("stereo.wav", np.stack([tone, 0.5 * tone]), 0.75 * tone), ("foa.wav", foa, foa)):
        sf.write(tmp_path / name, audio.T, rate)
        np.testing.assert_allclose(_init_audio(tmp_path / name, AppLimits(), rate), expected, atol=1e-4)
    sf.write(tmp_path / "mono.wav", tone[::2], rate // 2)  # another rate: resampled
    assert _init_audio(tmp_path / "mono.wav", AppLimits(), rate).shape == (rate,)
    clip = generate_clips(tiny_pipe, workspace, AppLimits(), "a tone", azimuth_deg=45.0, seed=0,
                          init_audio=tmp_path / "mono.wav", init_strength=0.5, **FAST)[0]
    assert sf.info(str(clip.ambix)).channels == 4


def test_init_audio_limits_and_unreadable_files(tiny_pipe: SoundstagePipeline, workspace: Workspace,
                                                tmp_path: Path) -> None:
    long_file = tmp_path / "long.wav"
    sf.write(long_file, np.zeros(3 * 8000, np.float32), 8000)
    with pytest.raises(AppError, match=r"init audio long.wav is 3.0 s long; at most 2 s"):
        generate_clips(tiny_pipe, workspace, AppLimits(max_init_seconds=2.0), "x", init_audio=long_file, **FAST)
    broken = tmp_path / "notes.wav"
    broken.write_text("not audio")
    with pytest.raises(AudioError, match=r"^notes.wav: not an audio file") as caught:
        generate_clips(tiny_pipe, workspace, AppLimits(), "x", init_audio=broken, **FAST)
    assert str(tmp_path) not in str(caught.value)  # the upload's temporary path is not shown to the user


def test_map_click_round_trip() -> None:
    size = PICKER_SIZE
    assert pixel_to_direction(size / 2, size / 2) == (0.0, 90.0)  # the centre is overhead
    assert pixel_to_direction(*direction_to_pixel(90.0, 0.0)) == (90.0, 0.0)
    assert direction_to_pixel(90.0, 0.0)[0] < size / 2  # left is on the left (seen from above, facing up)
    assert direction_to_pixel(0.0, 0.0)[1] < size / 2  # the front is at the top
    assert pixel_to_direction(0, size / 2) == (90.0, -90.0)  # outside the rim is the rim: straight down
    for azimuth in range(-180, 180, 5):
        for elevation in range(-85, 90, 5):
            x, y = direction_to_pixel(azimuth, elevation)
            assert pixel_to_direction(x, y) == (azimuth, elevation)
            if elevation <= 45:  # near the zenith a pixel spans more than a 5-degree azimuth step
                assert pixel_to_direction(x + 0.5, y - 0.5) == (azimuth, elevation)
    image = picker_image((90.0, 0.0), (-90.0, 30.0))
    assert image.shape == (size, size, 3) and image.dtype == np.uint8


def test_map_energy_equals_the_foa_map() -> None:
    rng = np.random.default_rng(0)
    foa = encode_mono(rng.standard_normal(4000).astype(np.float32), 60.0, 20.0)
    foa = foa + 0.2 * rng.standard_normal(foa.shape).astype(np.float32)
    energy, azimuths, elevations = direction_energy(foa, 24, 13, chunk=500)
    expected, expected_az, expected_el = direction_energy_map(foa, 24, 13)
    np.testing.assert_allclose(energy, expected, atol=1e-5)
    np.testing.assert_allclose(azimuths, expected_az)
    np.testing.assert_allclose(elevations, expected_el)
    peak = np.unravel_index(energy.argmax(), energy.shape)
    assert (azimuths[peak[1]], elevations[peak[0]]) == (60.0, 15.0)  # the grid point nearest the source


def test_workspace_keeps_the_newest_clips_and_is_removed() -> None:
    space = Workspace(max_clips=2)
    folders = [space.new_clip_folder() for _ in range(3)]
    assert [f.exists() for f in folders] == [False, True, True]
    space.close()
    assert not space.root.exists()


def test_rotating_a_clip_no_longer_stored_says_so(tiny_pipe: SoundstagePipeline) -> None:
    space = Workspace(max_clips=1)
    try:
        first = generate_clips(tiny_pipe, space, AppLimits(), "a", seed=0, **FAST)[0]
        generate_clips(tiny_pipe, space, AppLimits(), "b", seed=0, **FAST)
        with pytest.raises(AppError, match="no longer stored.*seed 0"):
            rotate_clip(tiny_pipe, space, first, 10.0, 0.0, 0.0)
    finally:
        space.close()


def test_names_and_history_rows(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    assert file_stem("  Ünder the Bridge: a train!! ", 12) == "nder_the_bridge_a_train_seed12"
    assert file_stem("???", 0) == "clip_seed0"
    assert file_stem("x" * 100, 1) == "x" * 48 + "_seed1"
    assert file_stem("a b", 3, (-90.0, 0.0, 12.5)) == "a_b_seed3_rot-90_0_12.5"
    clips = generate_clips(tiny_pipe, workspace, AppLimits(), "a dog", azimuth_deg=-90.0, seed=5, variations=2,
                           **FAST)
    rows = history_rows(clips)
    assert [row[:4] for row in rows] == [[2, "a dog", 6, "parametric"], [1, "a dog", 5, "parametric"]]
    assert rows[0][4] == "az -90.0, el +0.0"
