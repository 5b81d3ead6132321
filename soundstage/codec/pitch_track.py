"""Pitch track: a measured fundamental per latent frame, and a continuous-phase harmonic oscillator bank.

The bundled codec's decoder cannot form a narrow spectral peak at an arbitrary bin (a steady tone comes back 50 dB
down, and training on pitched crops does not change that: docs/codec.md). A harmonic branch sidesteps it the way the
direction latents sidestep direction: the encoder measures what a learned network loses, exactly, and the decoder
synthesises from the measurement.

- :func:`frame_pitch`: per latent frame, YIN's cumulative mean normalised difference on an 85-ms window centred on
  the frame gives a period (50 Hz - 8 kHz) and a periodicity ``1 - d'``; the frequency is then snapped to the
  frame's strongest spectral peak ``p`` (parabolic interpolation on a 4x zero-padded spectrum) as ``p / round(p /
  f0)``, so that the harmonic grid passes exactly through the loudest partial. Above 8 kHz a pure tone gets a
  sub-multiple of its frequency: harmonic ``k`` of that grid is the tone, which a harmonic synthesiser handles as
  well (only the amplitudes differ). A frame whose fundamental sits a whole number of octaves away from the median
  of the periodic frames around it is an octave slip of YIN (a few frames of a voice or an instrument jumping to
  half or double) and is moved back by those octaves before snapping (:func:`fix_octave_slips`).
- :func:`harmonic_bank`: ``K`` sinusoids at ``k * f0`` with per-frame amplitudes; frequencies and amplitudes are
  interpolated linearly to the sample rate and the phase is their running sum, so a steady partial is one unbroken
  sinusoid (no overlap-add, no frame-to-frame phase to invent). Partials at or above 0.45 x the sample rate are
  silent.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_F0_HZ = 50.0
MAX_F0_HZ = 8000.0
WINDOW_SECONDS = 0.085  # two periods of the lowest f0 fit in half of it (YIN's lag range)
YIN_THRESHOLD = 0.15
# octave-slip check: neighbours within +-2 frames, at least 3 periodic frames (periodicity >= 0.5) to vote, and a
# distance within 0.15 octave (1.8 semitones) of a whole number of octaves
SLIP_RADIUS = 2
SLIP_MIN_VOTERS = 3
SLIP_PERIODICITY = 0.5
SLIP_TOLERANCE = 0.15
ENERGY_FLOOR = 1e-10  # per sample: silent frames get periodicity 0
# latent encoding (FOACodecConfig.pitch_latents): two channels before the direction channels
NUM_PITCH_CHANNELS = 2
PITCH_REFERENCE_HZ = 250.0
PITCH_STD = 0.002  # fixed posterior std (log2 f0 units: 0.14 %; a sampled latent must not detune the partials)


def _analysis_frames(audio: torch.Tensor, hop: int, window: int) -> torch.Tensor:
    """``(B, L * hop)`` -> ``(B, L, window)`` frames centred on each latent frame's centre (zero-padded ends)."""
    if audio.shape[-1] % hop:
        raise ValueError(f"audio length {audio.shape[-1]} is not a multiple of the hop {hop}")
    left = window // 2 - hop // 2
    padded = F.pad(audio, (left, window - hop - left))
    return padded.unfold(-1, window, hop)


def _parabolic_offset(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Offset in [-0.5, 0.5] of the vertex of the parabola through three equally spaced points."""
    denom = left - 2 * centre + right
    offset = 0.5 * (left - right) / torch.where(denom.abs() > 1e-12, denom, torch.ones_like(denom))
    return offset.clamp(-0.5, 0.5)


def _yin(frames: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN on ``(N, window)`` frames -> period in samples ``(N,)`` (sub-sample) and periodicity ``(N,)`` in [0, 1]."""
    _n, window = frames.shape
    half = window // 2
    tau_min, tau_max = max(2, math.floor(sample_rate / MAX_F0_HZ)), min(half - 1, math.ceil(sample_rate / MIN_F0_HZ))
    size = 2 * window
    head = frames[:, :half]
    # r(tau) = sum_{j < half} x_j x_{j + tau}: cross-correlation of the first half with the whole frame
    corr = torch.fft.irfft(torch.conj(torch.fft.rfft(head, size)) * torch.fft.rfft(frames, size), size)[:, : half]
    energy = torch.cumsum(F.pad(frames.square(), (1, 0)), dim=-1)  # energy[:, i] = sum_{j < i} x_j^2
    lags = torch.arange(half, device=frames.device)
    e_head = energy[:, half : half + 1]
    e_shift = energy[:, half + lags] - energy[:, lags]
    diff = (e_head + e_shift - 2 * corr).clamp_min(0.0)  # d(tau)
    cumulative = torch.cumsum(diff[:, 1:], dim=-1)
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / cumulative.clamp_min(1e-12)
    search = cmnd[:, tau_min : tau_max + 1]
    below = search < YIN_THRESHOLD
    # first dip below the threshold, followed down to its local minimum; else the global minimum
    first = torch.where(below.any(-1), below.float().argmax(-1), search.argmin(-1))
    idx = first.clone()
    for _ in range(search.shape[-1]):
        nxt = (idx + 1).clamp(max=search.shape[-1] - 1)
        step = search.gather(-1, nxt[:, None])[:, 0] < search.gather(-1, idx[:, None])[:, 0]
        if not step.any():
            break
        idx = torch.where(step, nxt, idx)
    tau = idx + tau_min
    left = cmnd.gather(-1, (tau - 1)[:, None])[:, 0]
    centre = cmnd.gather(-1, tau[:, None])[:, 0]
    right = cmnd.gather(-1, (tau + 1).clamp(max=half - 1)[:, None])[:, 0]
    period = tau.float() + _parabolic_offset(left, centre, right)
    silent = e_head[:, 0] < ENERGY_FLOOR * half
    periodicity = torch.where(silent, torch.zeros_like(centre), (1.0 - centre).clamp(0.0, 1.0))
    return period, periodicity


def _strongest_peak_hz(frames: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Frequency ``(N,)`` of the largest peak of each Hann-windowed frame's 4x zero-padded spectrum."""
    window = frames.shape[-1]
    size = 4 * window
    spectrum = torch.fft.rfft(frames * torch.hann_window(window, periodic=False, dtype=frames.dtype,
                                                         device=frames.device), size).abs()
    log_mag = torch.log(spectrum + 1e-12)
    k = log_mag[:, 1:-1].argmax(-1) + 1
    offset = _parabolic_offset(log_mag.gather(-1, (k - 1)[:, None])[:, 0], log_mag.gather(-1, k[:, None])[:, 0],
                               log_mag.gather(-1, (k + 1)[:, None])[:, 0])
    return (k.float() + offset) * sample_rate / size


def _snap(f0: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """Move ``f0`` to ``peak / round(peak / f0)`` so that its harmonic grid passes through the strongest peak."""
    ratio = torch.round(peak / f0)
    return torch.where((ratio >= 1) & (ratio <= 64), peak / ratio.clamp_min(1), f0)


def fix_octave_slips(f0: torch.Tensor, periodicity: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` fundamentals -> the same with octave slips moved back (module doc), ``(B, L)``.

    The reference of frame ``l`` is the median ``log2 f0`` of the periodic frames among ``l - 2 .. l + 2`` (itself
    included), so a slip lasting one or two frames is outvoted while a real leap (held three frames or more) is
    kept; frames with fewer than three periodic voters are left as they are.
    """
    log_f0 = torch.log2(f0.clamp_min(1e-6))
    width = 2 * SLIP_RADIUS + 1
    votes = F.pad(torch.where(periodicity >= SLIP_PERIODICITY, log_f0, torch.nan), (SLIP_RADIUS, SLIP_RADIUS),
                  value=torch.nan).unfold(-1, width, 1)  # (B, L, 5)
    reference = votes.nanmedian(-1).values
    octaves = log_f0 - reference
    shift = torch.round(octaves)
    slipped = ((~votes.isnan()).sum(-1) >= SLIP_MIN_VOTERS) & (shift != 0) & ((octaves - shift).abs() < SLIP_TOLERANCE)
    return torch.where(slipped, f0 * torch.exp2(-shift), f0)


def frame_pitch(w: torch.Tensor, sample_rate: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, L * hop)`` mono (FOA's W) -> fundamental ``(B, L)`` in Hz and periodicity ``(B, L)`` in [0, 1] per latent
    frame (module doc). Periodicity near 1 means a clean periodic frame; noise and silence give values near 0."""
    window = 2 ** math.ceil(math.log2(WINDOW_SECONDS * sample_rate))
    frames = _analysis_frames(w, hop, window)
    b, n_frames, _ = frames.shape
    flat = frames.reshape(b * n_frames, window)
    period, periodicity = _yin(flat, sample_rate)
    f0 = sample_rate / period
    peak = _strongest_peak_hz(flat, sample_rate).reshape(b, n_frames)
    periodicity = periodicity.reshape(b, n_frames)
    f0 = fix_octave_slips(_snap(f0.reshape(b, n_frames), peak), periodicity)
    return _snap(f0, peak), periodicity


def pitch_latents(w: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
    """``(B, L * hop)`` W -> ``(B, 2, L)`` latent channels: ``log2(f0 / 250 Hz)`` (in [-2.3, 5]) and
    ``2 * periodicity - 1`` (in [-1, 1]); :func:`f0_from_latents` inverts the first."""
    f0, periodicity = frame_pitch(w, sample_rate, hop)
    return torch.stack((torch.log2(f0 / PITCH_REFERENCE_HZ), 2.0 * periodicity - 1.0), dim=1)


def f0_from_latents(channels: torch.Tensor) -> torch.Tensor:
    """``(B, 2, L)`` pitch channels -> ``(B, L)`` fundamental in Hz, clamped to the tracker's range."""
    return (PITCH_REFERENCE_HZ * torch.exp2(channels[:, 0])).clamp(MIN_F0_HZ, MAX_F0_HZ)


def harmonic_bank(f0_hz: torch.Tensor, amplitudes: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
    """``K`` harmonics of a per-frame fundamental, as one continuous-phase signal.

    Args:
        f0_hz: ``(B, L)`` fundamental per latent frame (Hz; values <= 0 give silence).
        amplitudes: ``(B, K, L)`` amplitude of harmonic ``k + 1`` per frame (peak amplitude of its sinusoid).

    Returns:
        ``(B, L * hop)`` audio. Frame ``l``'s values apply at its centre and are interpolated linearly in between.
    """
    b, k, n_frames = amplitudes.shape
    if f0_hz.shape != (b, n_frames):
        raise ValueError(f"f0 must have shape {(b, n_frames)}, got {tuple(f0_hz.shape)}")
    samples = n_frames * hop

    def to_samples(x: torch.Tensor) -> torch.Tensor:  # (B, C, L) frame-centre values -> (B, C, L * hop)
        padded = F.pad(x, (1, 1), mode="replicate")
        up = F.interpolate(padded, size=(n_frames + 2) * hop, mode="linear", align_corners=False)
        return up[..., hop : hop + samples]

    f0 = to_samples(f0_hz.clamp_min(0.0)[:, None])[:, 0]  # (B, T)
    amp = to_samples(amplitudes)  # (B, K, T)
    # the fundamental's phase at sample n: the sum of the angular steps before it (float64 keeps long clips exact);
    # harmonic k's phase is k times it, and sin(k phase) follows from the two before it (Chebyshev recurrence), which
    # is several times faster than K sines
    steps = (2 * math.pi / sample_rate) * f0.double()
    phase = (torch.cumsum(steps, dim=-1) - steps).remainder(2 * math.pi)  # every partial starts at phase 0
    sine, twice_cos = torch.sin(phase).to(amp.dtype), 2 * torch.cos(phase).to(amp.dtype)
    below, current = torch.zeros_like(sine), sine
    out = torch.zeros_like(sine)
    for harmonic in range(1, k + 1):
        audible = (f0 * harmonic < 0.45 * sample_rate) & (f0 > 0)
        out = out + amp[:, harmonic - 1] * current * audible
        below, current = current, twice_cos * current - below
    return out


__all__ = ["NUM_PITCH_CHANNELS", "PITCH_STD", "f0_from_latents", "fix_octave_slips", "frame_pitch", "harmonic_bank", "pitch_latents"]
