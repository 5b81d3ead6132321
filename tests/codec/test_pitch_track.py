import math

import pytest
import torch

from soundstage.codec.pitch_track import fix_octave_slips, frame_pitch, harmonic_bank

SR, HOP, FRAMES = 24_000, 512, 32
T = torch.arange(FRAMES * HOP) / SR


def _inner(x: torch.Tensor) -> torch.Tensor:
    return x[0, 4:-4]  # frames whose analysis window lies inside the signal


@pytest.mark.parametrize("freq", [60.0, 100.0, 440.0, 1000.0, 2500.0, 4000.0, 8000.0])
def test_a_tone_in_the_f0_range_gives_its_frequency(freq):
    f0, periodicity = frame_pitch(0.1 * torch.sin(2 * math.pi * freq * T)[None], SR, HOP)
    assert f0.shape == periodicity.shape == (1, FRAMES)
    assert torch.allclose(_inner(f0), torch.tensor(freq), rtol=1e-3)
    assert _inner(periodicity).min() > 0.95


@pytest.mark.parametrize("freq", [9000.0, 10000.0])
def test_a_tone_above_the_range_lies_exactly_on_the_harmonic_grid(freq):
    f0, _ = frame_pitch(0.1 * torch.sin(2 * math.pi * freq * T)[None], SR, HOP)
    ratio = freq / _inner(f0)
    assert torch.allclose(ratio, ratio.round(), atol=2e-3)
    assert (_inner(f0) <= 8000.0 * 1.001).all()


def test_a_harmonic_note_and_a_missing_fundamental_give_the_fundamental():
    note = sum(k**-1.0 * torch.sin(2 * math.pi * 220.0 * k * T + k) for k in range(1, 9))
    missing = sum(torch.sin(2 * math.pi * 200.0 * k * T + k) for k in range(2, 6))
    f0, _ = frame_pitch(torch.stack([note, missing]), SR, HOP)
    assert torch.allclose(f0[0, 4:-4], torch.tensor(220.0), rtol=1e-3)
    assert torch.allclose(f0[1, 4:-4], torch.tensor(200.0), rtol=1e-3)


def test_noise_and_silence_are_not_periodic():
    noise = 0.1 * torch.randn(1, FRAMES * HOP, generator=torch.Generator().manual_seed(0))
    _, periodicity = frame_pitch(torch.cat([noise, torch.zeros_like(noise)]), SR, HOP)
    assert periodicity[0].median() < 0.3
    assert periodicity[1].max() == 0.0


def test_frame_pitch_rejects_a_length_that_is_not_a_multiple_of_the_hop():
    with pytest.raises(ValueError, match="not a multiple of the hop"):
        frame_pitch(torch.zeros(1, HOP + 1), SR, HOP)


def test_harmonic_bank_makes_steady_partials_at_their_level_and_frequency():
    amps = torch.tensor([1.0, 0.5])[None, :, None].expand(1, 2, FRAMES).contiguous()
    audio = harmonic_bank(torch.full((1, FRAMES), 440.0), amps, SR, HOP)
    assert audio.shape == (1, FRAMES * HOP)
    assert audio.pow(2).mean().sqrt().item() == pytest.approx(math.sqrt(0.5 * (1 + 0.25)), rel=2e-3)
    f0, _periodicity = frame_pitch(audio, SR, HOP)  # round trip through the tracker
    assert torch.allclose(_inner(f0), torch.tensor(440.0), rtol=1e-3)


def test_harmonic_bank_glides_without_phase_jumps_and_mutes_partials_near_nyquist():
    glide = harmonic_bank(torch.linspace(200.0, 800.0, FRAMES)[None], torch.ones(1, 1, FRAMES), SR, HOP)
    # a continuous phase moves by at most 2 pi f / sr per sample
    assert (glide[0, 1:] - glide[0, :-1]).abs().max() <= 2 * math.pi * 800.0 / SR + 1e-4
    high = harmonic_bank(torch.full((1, FRAMES), 6000.0), torch.ones(1, 3, FRAMES), SR, HOP)
    spectrum = torch.fft.rfft(high[0]).abs()
    peak_hz = spectrum.argmax().item() * SR / high.shape[-1]
    assert peak_hz == pytest.approx(6000.0, abs=2.0)  # harmonics 2 and 3 (12 and 18 kHz) are muted
    assert spectrum[round(11_000 * high.shape[-1] / SR):].max() < 1e-3 * spectrum.max()


def test_harmonic_bank_checks_the_f0_shape():
    with pytest.raises(ValueError, match="f0 must have shape"):
        harmonic_bank(torch.ones(1, FRAMES - 1), torch.ones(1, 2, FRAMES), SR, HOP)


def test_a_slip_of_one_or_two_frames_is_moved_back_by_whole_octaves():
    f0 = torch.full((1, 12), 220.0)
    f0[0, 3], f0[0, 7:9] = 440.0, 110.0 * 1.02  # an octave up; two frames an octave (and a bit) down
    fixed = fix_octave_slips(f0, torch.full_like(f0, 0.9))
    expected = torch.full((1, 12), 220.0)
    expected[0, 7:9] = 220.0 * 1.02
    assert torch.allclose(fixed, expected)


def test_a_held_leap_a_fifth_and_unvoiced_neighbours_are_kept():
    leap = torch.tensor([[220.0] * 5 + [440.0] * 5])  # a melody's octave leap held for five frames
    fifth = torch.tensor([[220.0] * 4 + [330.0] + [220.0] * 4])  # 0.58 octave: not a slip
    assert torch.equal(fix_octave_slips(leap, torch.full_like(leap, 0.9)), leap)
    assert torch.equal(fix_octave_slips(fifth, torch.full_like(fifth, 0.9)), fifth)
    lone = torch.tensor([[100.0, 3000.0, 440.0, 2000.0, 150.0]])  # one periodic frame among noise: too few voters
    periodicity = torch.tensor([[0.1, 0.2, 0.9, 0.1, 0.2]])
    assert torch.equal(fix_octave_slips(lone, periodicity), lone)
