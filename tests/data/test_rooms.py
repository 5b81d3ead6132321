"""Rooms and FOA room responses: sampling ranges, the encoding's signs (physics), measured labels, the bank."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from soundstage.common.errors import UsageError
from soundstage.data import rooms
from soundstage.data.manifest import ATTRIBUTE_RANGES
from soundstage.data.rooms import (
    WALL_CLEARANCE_M,
    BankConfig,
    BankError,
    RirBank,
    RoomSpec,
    direct_path_doa,
    measure_t30,
    room_split_assignment,
    sample_room,
    simulate_foa_rir,
)
from soundstage.foa import great_circle_deg


def _in_range(name: str, value: float) -> bool:
    low, high = ATTRIBUTE_RANGES[name]
    return low <= value <= high


def test_sampled_rooms_cover_design_ranges() -> None:
    rng = np.random.default_rng(1)
    specs = [sample_room(rng) for _ in range(300)]
    for spec in specs:
        assert _in_range("elevation_deg", spec.elevation_deg)
        assert _in_range("distance_m", spec.distance_m)
        assert _in_range("floor_area_m2", spec.floor_area_m2)
        assert _in_range("t30_s", spec.target_t30_s)
        assert -180.0 <= spec.azimuth_deg < 180.0
        source, dims = np.asarray(spec.source_m), np.asarray(spec.room_dims_m)
        assert np.all(source >= WALL_CLEARANCE_M - 1e-9) and np.all(source <= dims - WALL_CLEARANCE_M + 1e-9)
        assert 0.0 < spec.absorption < 1.0
    # The statistics span the ranges (not squeezed into an easy corner).
    areas = [s.floor_area_m2 for s in specs]
    t30s = [s.target_t30_s for s in specs]
    azimuths = np.asarray([s.azimuth_deg for s in specs])
    assert min(areas) < 20 and max(areas) > 200
    assert min(t30s) < 0.2 and max(t30s) > 2.0
    assert all(np.any((azimuths >= lo) & (azimuths < lo + 90)) for lo in (-180, -90, 0, 90))


def test_sampling_is_deterministic_for_a_seed() -> None:
    first = [sample_room(np.random.default_rng(7)) for _ in range(2)]
    assert first[0] == first[1]
    assert sample_room(np.random.default_rng(8)) != first[0]


@pytest.mark.parametrize(
    ("source", "azimuth", "elevation"),
    [((4.5, 2.0, 1.5), 0.0, 0.0), ((3.0, 3.5, 1.5), 90.0, 0.0), ((3.0, 0.5, 1.5), -90.0, 0.0),
     ((1.5, 2.0, 1.5), -180.0, 0.0), ((3.0, 2.0, 2.7), 0.0, 90.0)],
)
def test_direct_path_is_encoded_with_design_signs(source: tuple, azimuth: float, elevation: float) -> None:
    """A source on the left gives +Y, in front +X, above +Z (docs/conventions.md), exactly for the direct path."""
    spec = RoomSpec((6.0, 4.0, 3.0), 0.3, (3.0, 2.0, 1.5), source, 0.4)
    rir = simulate_foa_rir(spec, 16000, calibration_steps=0)
    peak = rir.direct_index
    expected = np.array([1.0, math.sin(math.radians(azimuth)) * math.cos(math.radians(elevation)),
                         math.sin(math.radians(elevation)),
                         math.cos(math.radians(azimuth)) * math.cos(math.radians(elevation))])
    gains = rir.audio[:, peak] / rir.audio[0, peak]
    np.testing.assert_allclose(gains, expected, atol=0.02)
    assert great_circle_deg(rir.direct_azimuth_deg, rir.direct_elevation_deg, azimuth, elevation) < 0.5


@pytest.mark.slow
def test_random_rooms_direct_path_and_t30_labels() -> None:
    """20 random rooms: the direct path points at the label (< 1 deg) and measured T30 is within 25 % of target."""
    rng = np.random.default_rng(2024)
    for index in range(20):
        spec = sample_room(rng)
        rir = simulate_foa_rir(spec, 16000, seed=index)
        assert rir.audio.shape[0] == 4 and rir.audio.dtype == np.float32
        assert rir.direct_error_deg < 1.0, (index, spec)
        assert abs(rir.t30_s / spec.target_t30_s - 1.0) < 0.25, (index, rir.t30_s, spec.target_t30_s)
        assert rir.spec.room_dims_m == spec.room_dims_m and rir.spec.source_m == spec.source_m


def test_long_rooms_get_a_diffuse_isotropic_tail() -> None:
    spec = RoomSpec((5.0, 4.0, 2.8), rooms.eyring_absorption(2.5, 56.0, 2 * (20 + 14 + 11.2)), (2.0, 2.0, 1.5),
                    (3.5, 3.0, 1.7), 2.5)
    rir = simulate_foa_rir(spec, 8000, seed=3)
    assert rir.tail_start_s is not None and rir.ism_order == rooms.DEFAULT_MAX_ISM_ORDER
    assert abs(rir.t30_s / 2.5 - 1.0) < 0.1
    late = rir.audio[:, int((rir.tail_start_s + 0.2) * 8000) :].astype(np.float64)
    energy = np.mean(late**2, axis=1)
    np.testing.assert_allclose(energy[1:] / energy[0], 1.0 / 3.0, rtol=0.15)  # SN3D isotropic split
    intensity = late[0] @ late[1:].T / np.sqrt(energy[0] * energy[1:]) / late.shape[1]
    assert np.all(np.abs(intensity) < 0.05)  # incoherent: no direction
    again = simulate_foa_rir(spec, 8000, seed=3)
    np.testing.assert_array_equal(rir.audio, again.audio)


def _decaying_noise(t60: float, seconds: float, sample_rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.random.default_rng(0).standard_normal(t.size) * 10.0 ** (-3.0 * t / t60)


def test_measure_t30_on_known_decay() -> None:
    t30, method = measure_t30(_decaying_noise(0.8, 1.0), 8000)
    assert method == "T30" and t30 == pytest.approx(0.8, rel=0.05)


def test_measure_t30_falls_back_to_t20_on_short_dynamic_range() -> None:
    t30, method = measure_t30(_decaying_noise(1.0, 0.65), 8000)  # truncated at -39 dB
    assert method == "T20" and t30 == pytest.approx(1.0, rel=0.1)
    t30, method = measure_t30(_decaying_noise(1.0, 0.5), 8000)  # truncated at -30 dB
    assert method == "T10" and t30 == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="cannot measure"):
        measure_t30(_decaying_noise(1.0, 0.3), 8000)


def test_direct_path_doa_of_a_plane_wave() -> None:
    foa = np.zeros((4, 100), dtype=np.float32)
    foa[:, 50] = [1.0, math.sin(math.radians(-120)) * math.cos(math.radians(30)), math.sin(math.radians(30)),
                  math.cos(math.radians(-120)) * math.cos(math.radians(30))]
    azimuth, elevation, peak = direct_path_doa(foa, 16000)
    assert (azimuth, elevation, peak) == (pytest.approx(-120.0), pytest.approx(30.0), 50)


def test_room_split_assignment_partitions_rooms() -> None:
    splits = room_split_assignment(100, seed=0)
    assert {s: splits.count(s) for s in set(splits)} == {"train": 80, "valid": 10, "test": 10}
    small = room_split_assignment(3, seed=0)
    assert sorted(small) == ["test", "train", "valid"]
    assert room_split_assignment(100, seed=1) != splits


def test_bank_builds_once_and_reloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = BankConfig(size=4, sample_rate=8000, seed=5)
    bank = RirBank(tmp_path / "bank", config).build(workers=1, progress=False)
    assert len(bank.records) == 4 and {r["split"] for r in bank.records} == {"train", "valid", "test"}
    assert len({r["room_id"] for r in bank.records}) == 4
    for record in bank.records:
        assert record["direct_error_deg"] < 1.0 and _in_range("t30_s", record["t30_s"])
    audio = bank.load(2)
    assert audio.shape == (4, bank.records[2]["num_frames"]) and audio.dtype == np.float32
    spec = RoomSpec.from_dict(bank.records[2])
    direct = simulate_foa_rir(spec, 8000, seed=bank.records[2]["tail_seed"], calibration_steps=0)
    np.testing.assert_allclose(audio, direct.audio, atol=float(np.abs(direct.audio).max()) * 1e-6)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete bank must not simulate again")

    monkeypatch.setattr(rooms, "_build_one", fail)
    reopened = RirBank.open(tmp_path / "bank").build(progress=False)
    assert reopened.records == bank.records
    with pytest.raises(BankError, match=r"holds a response bank made with sample_rate 8000 \(now 16000\)"):
        RirBank(tmp_path / "bank", BankConfig(size=4, sample_rate=16000, seed=5))


@pytest.mark.parametrize("sample_rate", [7, 7999, 96001])
def test_bank_refuses_unsupported_sample_rates(sample_rate: int) -> None:
    with pytest.raises(UsageError, match=f"sample rate {sample_rate} Hz is outside the 8000-96000 Hz"):
        BankConfig(size=4, sample_rate=sample_rate)


def test_interrupted_bank_build_keeps_finished_responses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the middle of a build: the finished responses stay and a resumed build simulates only the rest."""
    config = BankConfig(size=4, sample_rate=8000, seed=5)
    real = rooms._build_one
    built: list[int] = []

    def interrupt_after_two(folder: str, config: BankConfig, index: int, split: str) -> dict:
        if len(built) == 2:
            raise KeyboardInterrupt
        built.append(index)
        return real(folder, config, index, split)

    monkeypatch.setattr(rooms, "_build_one", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        RirBank(tmp_path / "bank", config).build(workers=1, progress=False)
    assert RirBank(tmp_path / "bank", config).missing() == [2, 3]
    monkeypatch.setattr(rooms, "_build_one", real)
    assert len(RirBank(tmp_path / "bank", config).build(workers=1, progress=False).records) == 4
