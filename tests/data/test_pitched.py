import numpy as np
import pytest
import torch

from soundstage.data.pitched import PitchedMixDataset, diffuse_tail, synthetic_pitched_foa, synthetic_pitched_mono
from soundstage.foa import diffuseness

SR = 16_000


def _flatness(signal: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(signal * np.hanning(signal.size))) ** 2 + 1e-20
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))


def test_pitched_crops_are_pure_functions_of_the_generator():
    a = synthetic_pitched_foa(np.random.default_rng(5), SR, SR)
    b = synthetic_pitched_foa(np.random.default_rng(5), SR, SR)
    c = synthetic_pitched_foa(np.random.default_rng(6), SR, SR)
    assert a.shape == (4, SR) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pitched_crops_are_tonal_and_at_the_drawn_level():
    flatness, levels = [], []
    for seed in range(24):
        foa = synthetic_pitched_foa(np.random.default_rng(seed), SR, SR)
        flatness.append(_flatness(foa[0]))
        levels.append(10 * np.log10(np.mean(foa[0].astype(np.float64) ** 2)))
    noise = np.random.default_rng(0).standard_normal(SR)
    assert np.median(flatness) < 0.01 < _flatness(noise)  # peaky spectra, unlike noise (~0.5)
    assert min(levels) >= -30.01 and max(levels) <= -13.99


def test_mono_signal_peaks_at_a_partial_within_the_drawn_range():
    for seed in range(12):
        mono = synthetic_pitched_mono(np.random.default_rng(seed), SR, SR)
        peak_hz = np.argmax(np.abs(np.fft.rfft(mono))) * SR / mono.size
        assert 55.0 <= peak_hz < 0.45 * SR
        assert np.sqrt(np.mean(mono**2)) == pytest.approx(1.0, rel=1e-6)


def test_diffuse_tail_is_diffuse_and_matches_the_dry_energy():
    rng = np.random.default_rng(1)
    dry = rng.standard_normal(SR)
    tail = diffuse_tail(rng, dry, t60_s=0.8, sample_rate=SR)
    assert tail.shape == (4, SR)
    assert np.mean(tail[0] ** 2) == pytest.approx(np.mean(dry**2), rel=1e-6)
    assert np.mean(tail[1:] ** 2) / np.mean(tail[0] ** 2) == pytest.approx(1 / 3, rel=0.15)
    assert float(diffuseness(torch.from_numpy(tail).float())) > 0.8


class _Constant(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.full((4, SR), 0.01 * (index + 1))


def test_mix_dataset_replaces_the_drawn_fraction_reproducibly():
    base = _Constant()
    none = PitchedMixDataset(base, 0.0, SR, SR, seed=0)
    assert all(torch.equal(none[i], base[i]) for i in range(10))
    mixed = PitchedMixDataset(base, 0.5, SR, SR, seed=0)
    replaced = [not torch.equal(mixed[i], base[i]) for i in range(200)]
    assert 70 <= sum(replaced) <= 130
    assert all(torch.equal(mixed[i], PitchedMixDataset(base, 0.5, SR, SR, seed=0)[i]) for i in range(20))


def test_mix_dataset_rejects_a_fraction_outside_0_1():
    with pytest.raises(ValueError, match="fraction must lie in"):
        PitchedMixDataset(_Constant(), 1.5, SR, SR, seed=0)
