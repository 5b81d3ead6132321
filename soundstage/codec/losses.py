"""Codec training losses: multi-resolution STFT on every channel, level, spatial and KL terms, an optional adversary.

Total loss (weights in :class:`CodecLossConfig`)::

    stft_weight * mean_c MRSTFT(channel c) + band_energy_weight * band energy + long_term_band_weight * long-term
        band energy + level_weight * level + spatial_weight * (direction + diffuseness)
        + intensity_weight * intensity vector + broadband_weight * broadband + mel_weight * log-mel
        + partial_weight * partials + kl_weight * KL  [+ adversarial terms]

- MRSTFT (auraloss) is applied to each AmbiX channel on its own, so that the quiet Z channel counts as much as W.
- Band energy compares channel levels in coarse time-frequency regions (and, long-term, over the whole crop) after
  the overlap-add: a decoder that invents its phase loses energy where overlapping frames do not cohere, and an L1
  of log magnitudes settles below the mean energy; both would leave the reconstruction too quiet.
- Level compares each channel's whole-crop energy: band terms average over bands, so a loud band 6 dB low and a
  quiet band 6 dB high cancel in them while the clip comes back 6 dB quiet (what the evaluation's W level measures).
- The magnitude terms do not see the sign of X/Y/Z relative to W, where direction lives: the spatial terms
  (:func:`spatial_terms`) compare active intensity direction, diffuseness, intensity vectors and the whole-crop
  intensity (what the evaluation's angle error measures).
- KL to N(0, I) only keeps the posterior tidy for diffusion; ``latent_scale`` fixes the variance after training.
- Partials (off by default) compare W's level at the harmonics of the input's tracked pitch, in periodic frames
  only: the other terms average a -6 dB partial with the near-empty bins around it and forgive it (a tone's
  level is one bin among hundreds), this term counts nothing else.
- Log-mel (off by default) forgives a partial one bin off more than MRSTFT does. What each term was measured to do
  is in docs/codec.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from soundstage.codec.pitch_track import frame_pitch
from soundstage.common.stft import stft
from soundstage.foa import foa_stft, intensity_from_stft


@dataclass
class CodecLossConfig:
    stft_weight: float = 1.0
    fft_sizes: tuple[int, ...] = (2048, 512, 128)  # 85 ms down to 5 ms at 24 kHz
    hop_fractions: float = 0.5  # hop = fft size * this; 0.5 halves the loss's cost vs 0.25 (it is ~1/3 of a step)
    # floor added to magnitudes before the log (auraloss's eps); at 1e-8 a faint noise floor where the input is
    # silent costs as much as a tone 6 dB too quiet, 1e-3 (about -70 dB re the dataset's level) makes it negligible
    stft_log_eps: float = 1e-8
    band_energy_weight: float = 1.0  # |log10 energy ratio| per region: 0.3 = 3 dB; same order as MRSTFT
    band_energy_n_fft: int = 1024
    band_energy_bands: int = 32  # log-spaced over 23 Hz - 12 kHz at 24 kHz: ~1/3 octave
    long_term_band_weight: float = 1.0  # the same |log10 ratio| on whole-crop band energies
    level_weight: float = 0.0  # |log10 energy ratio| of each channel over the whole crop (see level_loss)
    intensity_weight: float = 1.0  # region-wise intensity vector error, bounded by 2
    broadband_weight: float = 0.0  # whole-crop intensity vector error, relative to its length (see spatial_terms)
    spatial_weight: float = 1.0  # 1 - cosine lies in [0, 2] and diffuseness error in [0, 1]: same order as MRSTFT
    spatial_n_fft: int = 512
    spatial_bands: int = 16  # log-spaced frequency regions
    spatial_region_frames: int = 8  # STFT frames per time region (~85 ms at hop 256, 24 kHz)
    partial_weight: float = 0.0  # |log10 power ratio| at the input's partials (see partial_level_loss); 0.3 = 3 dB
    partial_harmonics: int = 32
    mel_weight: float = 0.0  # log10 mel power L1; 1 = a factor of 10 in power on average
    mel_fft_sizes: tuple[int, ...] = (2048, 1024, 512)
    mel_bands: int = 80
    kl_weight: float = 1e-4
    adversarial: bool = False  # multi-scale STFT discriminator (GPU-scale training; off by default)
    adversarial_weight: float = 0.1
    feature_matching_weight: float = 1.0


class MultiChannelSTFTLoss(nn.Module):
    """auraloss multi-resolution STFT loss on each channel of ``(B, C, T)`` audio, averaged over channels."""

    def __init__(self, fft_sizes: tuple[int, ...], hop_fraction: float = 0.25, log_eps: float = 1e-8):
        super().__init__()
        from auraloss.freq import MultiResolutionSTFTLoss

        self.loss = MultiResolutionSTFTLoss(
            fft_sizes=list(fft_sizes),
            hop_sizes=[max(1, int(n * hop_fraction)) for n in fft_sizes],
            win_lengths=list(fft_sizes),
            eps=log_eps,
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # channel by channel: auraloss's spectral convergence is one ratio over the whole tensor, which would let the
        # loud W channel drown the others
        return torch.stack([self.loss(pred[:, c : c + 1], target[:, c : c + 1]) for c in range(pred.shape[1])]).mean()


class LogMelLoss(nn.Module):
    """Mean ``|log10 mel_pred - log10 mel_target|`` of ``(B, C, T)`` audio over channels, bands, frames and FFT sizes.

    Each resolution is a ``soundstage.metrics.audio_metrics.mel_power_spectrogram``; a floor 80 dB below each item's
    loudest mel bin keeps digital silence from dominating.
    """

    def __init__(self, sample_rate: int, fft_sizes: tuple[int, ...] = (2048, 1024, 512), n_mels: int = 80):
        super().__init__()
        self.sample_rate, self.fft_sizes, self.n_mels = sample_rate, tuple(fft_sizes), n_mels

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from soundstage.metrics.audio_metrics import mel_power_spectrogram

        b, c, t = pred.shape
        both = torch.cat((pred, target)).reshape(2, b * c, t)
        total = pred.new_zeros(())
        for n_fft in self.fft_sizes:
            mel = mel_power_spectrogram(both, self.sample_rate, n_fft, self.n_mels).flatten(-2)  # (2, B * C, bins)
            floor = mel[1].amax(-1, keepdim=True) * 1e-8 + 1e-12
            total = total + (torch.log10(mel[0] + floor) - torch.log10(mel[1] + floor)).abs().mean()
        return total / len(self.fft_sizes)


def kl_loss(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) summed over channels (dim 1), averaged over batch and frames."""
    var = std.square()
    return (0.5 * (mean.square() + var - torch.log(var) - 1.0)).sum(1).mean()


def _band_matrix(num_bins: int, num_bands: int, device: torch.device) -> torch.Tensor:
    """``(F, K)`` 0/1 matrix grouping FFT bins 1..F-1 into ``K`` log-spaced bands (DC goes with the first band)."""
    edges = torch.logspace(0, torch.log10(torch.tensor(float(num_bins))), num_bands + 1)
    index = torch.bucketize(torch.arange(num_bins).clamp_min(1).float(), edges[1:-1], right=True)
    return F.one_hot(index, num_bands).float().to(device)


def region_intensity(
    foa: torch.Tensor, n_fft: int = 512, num_bands: int = 16, region_frames: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Active intensity ``(B, 3, K, M)`` and energy density ``(B, K, M)`` summed over coarse TF regions.

    ``foa`` is ``(B, 4, T)`` AmbiX; ``K`` log-spaced frequency bands times ``M`` time regions of ``region_frames``
    STFT frames (hop ``n_fft // 2``).
    """
    active, _, energy = intensity_from_stft(foa_stft(foa, n_fft, n_fft // 2))
    bands = _band_matrix(energy.shape[-2], num_bands, foa.device)
    active = torch.einsum("bcfn,fk->bckn", active, bands)
    energy = torch.einsum("bfn,fk->bkn", energy, bands)
    frames = energy.shape[-1]
    pool = min(region_frames, frames)
    active = F.avg_pool1d(active.flatten(1, 2), pool, pool, ceil_mode=True).unflatten(1, (3, num_bands)) * pool
    energy = F.avg_pool1d(energy, pool, pool, ceil_mode=True) * pool
    return active, energy


def band_energy_loss(
    pred: torch.Tensor, target: torch.Tensor, n_fft: int = 1024, num_bands: int = 32, region_frames: int | None = 4,
    floor_db: float = 60.0,
) -> torch.Tensor:
    """Mean ``|log10 E_pred - log10 E_target|`` over channels and TF regions of ``(B, C, T)`` audio.

    Energies are summed over log-spaced bands x ``region_frames`` STFT frames (hop ``n_fft // 2``; ``None``: the
    whole signal, i.e. the long-term spectrum); a floor ``floor_db`` below each item's loudest region keeps
    near-silent regions from dominating.
    """
    b, c, t = pred.shape
    power = stft(torch.cat((pred, target)).reshape(2 * b * c, t), n_fft, n_fft // 2).abs().square()
    bands = _band_matrix(power.shape[-2], num_bands, pred.device)
    bands = bands[:, bands.sum(0) > 0]  # the lowest log-spaced bands may hold no FFT bin
    power = torch.einsum("sfn,fk->skn", power, bands)
    pool = power.shape[-1] if region_frames is None else min(region_frames, power.shape[-1])
    energy = F.avg_pool1d(power, pool, pool, ceil_mode=True).reshape(2, b, c, bands.shape[1], -1)
    floor = energy[1].flatten(1).amax(1)[:, None, None, None] * 10.0 ** (-floor_db / 10.0) + 1e-12
    return (torch.log10(energy[0] + floor) - torch.log10(energy[1] + floor)).abs().mean()


def level_loss(pred: torch.Tensor, target: torch.Tensor, floor_db: float = 60.0) -> torch.Tensor:
    """Mean ``|log10 E_pred - log10 E_target|`` of each channel's whole-signal energy, ``(B, C, T)`` audio.

    A floor ``floor_db`` below each item's loudest channel keeps a near-silent channel (Z of a source on the horizon)
    from dominating. 0.3 is a 3 dB level error.
    """
    energy_p, energy_t = pred.square().sum(-1), target.square().sum(-1)  # (B, C)
    floor = energy_t.amax(1, keepdim=True) * 10.0 ** (-floor_db / 10.0) + 1e-12
    return (torch.log10(energy_p + floor) - torch.log10(energy_t + floor)).abs().mean()


PARTIAL_HOP = 512  # the codec's latent hop at 24 kHz: the loss measures the frames the harmonic branch is driven by
PARTIAL_N_FFT = 2048  # 11.7 Hz bins at 24 kHz: partials of a 50 Hz fundamental are four bins apart
PARTIAL_PERIODICITY = 0.5


def partial_level_loss(pred: torch.Tensor, target: torch.Tensor, sample_rate: int, harmonics: int = 32,
                       floor_db: float = 60.0) -> torch.Tensor:
    """Mean ``|log10 P_pred - log10 P_target|`` of W's power at the partials of the target's pitch, ``(B, C, T)``.

    Per frame of :data:`PARTIAL_HOP` samples the target's W is tracked (:func:`frame_pitch`); in frames with
    periodicity >= 0.5 both W spectra (Hann, :data:`PARTIAL_N_FFT`, centred on the frame) are read at ``k * f0``
    for ``k = 1 .. harmonics`` below 0.45 x the sample rate (magnitudes interpolated between the two nearest bins).
    Partials more than ``floor_db`` below the item's loudest are left out. 0 when no frame is periodic.
    """
    hop = PARTIAL_HOP
    frames = -(-pred.shape[-1] // hop)
    pad = frames * hop - pred.shape[-1]
    w_pred, w_target = F.pad(pred[:, 0], (0, pad)), F.pad(target[:, 0], (0, pad))
    with torch.no_grad():
        f0, periodicity = frame_pitch(w_target, sample_rate, hop)  # (B, L)
    # frame l of a centred STFT of the signal shifted by half a hop is centred on latent frame l's centre
    both = F.pad(torch.stack((w_pred, w_target))[..., hop // 2 :], (0, hop // 2))
    magnitude = stft(both, PARTIAL_N_FFT, hop).abs()[..., :frames].transpose(-1, -2)  # (2, B, L, F)
    k = torch.arange(1, harmonics + 1, device=pred.device, dtype=pred.dtype)
    freqs = f0[..., None] * k  # (B, L, K)
    position = freqs * PARTIAL_N_FFT / sample_rate
    low = position.floor().long().clamp(0, magnitude.shape[-1] - 2)
    frac = (position - low).clamp(0.0, 1.0)
    index = low.expand(2, *low.shape)
    level = (magnitude.gather(-1, index) * (1 - frac) + magnitude.gather(-1, index + 1) * frac).square()
    peak = level[1].flatten(1).amax(1)[:, None, None]  # (B, 1, 1)
    floor = peak * 10.0 ** (-floor_db / 10.0) + 1e-12
    weight = ((periodicity >= PARTIAL_PERIODICITY)[..., None] & (freqs < 0.45 * sample_rate)
              & (level[1] > floor)).to(pred.dtype)
    error = (torch.log10(level[0] + floor) - torch.log10(level[1] + floor)).abs()
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


def spatial_terms(
    pred: torch.Tensor, target: torch.Tensor, n_fft: int = 512, num_bands: int = 16, region_frames: int = 8
) -> dict[str, torch.Tensor]:
    """Spatial mismatch of two ``(B, 4, T)`` AmbiX signals, each term 0 when they agree.

    From the active intensity ``I`` and energy density ``E`` summed over TF regions (:func:`region_intensity`):

    - ``direction``: ``1 - cos(I_pred, I_target)`` per region, weighted by the target's directional energy
      ``sqrt(E) * (1 - psi)``; ``diffuseness``: ``|psi_pred - psi_target|`` with ``psi = 1 - |I| / E``, weighted by
      ``sqrt(E)``. The square root compresses loudness so that quiet but audible regions still count.
    - ``intensity_vector``: ``sum |I_pred - I_target| / sum E_target`` per item, which by the triangle inequality
      bounds the error of the broadband (whole-crop) intensity relative to the energy; at most 2.
    - ``broadband``: ``|sum I_pred - sum I_target| / (|sum I_target| + 0.1 sum E_target)`` per item: the error of the
      whole-crop intensity vector, relative to its length (about the angle error in radians), with a floor for
      diffuse crops whose net intensity is a small residue.
    """
    active_p, energy_p = region_intensity(pred, n_fft, num_bands, region_frames)
    active_t, energy_t = region_intensity(target, n_fft, num_bands, region_frames)
    norm_p, norm_t = active_p.norm(dim=1), active_t.norm(dim=1)
    floor = 1e-9 + 1e-6 * energy_t.flatten(1).amax(1)[:, None, None]  # ignore regions of (near) silence
    cosine = (active_p * active_t).sum(1) / (norm_p * norm_t + floor)
    psi_t = (1.0 - norm_t / (energy_t + floor)).clamp(0.0, 1.0)
    psi_p = (1.0 - norm_p / (energy_p + floor)).clamp(0.0, 1.0)
    loudness = (energy_t + floor).sqrt() - floor.sqrt()
    w_dir = loudness * (1.0 - psi_t)
    total_energy = energy_t.flatten(1).sum(1) + 1e-9  # (B,)
    sum_p, sum_t = active_p.sum((-1, -2)), active_t.sum((-1, -2))  # (B, 3)
    return {
        "direction": ((1.0 - cosine) * w_dir).sum() / w_dir.sum().clamp_min(1e-12),
        "diffuseness": ((psi_p - psi_t).abs() * loudness).sum() / loudness.sum().clamp_min(1e-12),
        "intensity_vector": ((active_p - active_t).norm(dim=1).flatten(1).sum(1) / total_energy).mean(),
        "broadband": ((sum_p - sum_t).norm(dim=-1) / (sum_t.norm(dim=-1) + 0.1 * total_energy)).mean(),
    }


def spatial_loss(pred: torch.Tensor, target: torch.Tensor, n_fft: int = 512, num_bands: int = 16,
                 region_frames: int = 8) -> torch.Tensor:
    """Direction + diffuseness terms of :func:`spatial_terms` (the region-wise spatial loss)."""
    terms = spatial_terms(pred, target, n_fft, num_bands, region_frames)
    return terms["direction"] + terms["diffuseness"]


class STFTDiscriminator(nn.Module):
    """2D conv discriminator on one resolution of the complex STFT of all 4 channels (real, imag stacked)."""

    def __init__(self, n_fft: int, channels: int = 32, audio_channels: int = 4):
        super().__init__()
        self.n_fft = n_fft
        c = channels
        self.convs = nn.ModuleList([
            nn.Conv2d(2 * audio_channels, c, (3, 9), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(c, c, (3, 3), padding=(1, 1)),
        ])
        self.out = nn.Conv2d(c, 1, (3, 3), padding=(1, 1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = stft(audio, self.n_fft, self.n_fft // 4).transpose(-1, -2)  # (B, C, frames, F)
        x = torch.cat((spec.real, spec.imag), dim=1)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """Several :class:`STFTDiscriminator` at different FFT sizes (EnCodec-style)."""

    def __init__(self, fft_sizes: tuple[int, ...] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList([STFTDiscriminator(n, channels) for n in fft_sizes])

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(audio) for d in self.discriminators]


def discriminator_loss(disc: MultiScaleSTFTDiscriminator, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hinge loss for the discriminator (``pred`` is detached here)."""
    loss = pred.new_zeros(())
    for (fake, _), (real, _) in zip(disc(pred.detach()), disc(target)):
        loss = loss + F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return loss / len(disc.discriminators)


def generator_adversarial_loss(
    disc: MultiScaleSTFTDiscriminator, pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hinge generator loss, L1 feature matching relative to the real features)."""
    adv, fm = pred.new_zeros(()), pred.new_zeros(())
    with torch.no_grad():
        real_out = disc(target)
    for (fake, fake_feats), (_, real_feats) in zip(disc(pred), real_out):
        adv = adv + F.relu(1.0 - fake).mean()
        for f, r in zip(fake_feats, real_feats):
            fm = fm + (f - r).abs().mean() / r.abs().mean().clamp_min(1e-6)
    n = len(disc.discriminators)
    return adv / n, fm / (n * len(real_out[0][1]))


class CodecLoss(nn.Module):
    """Reconstruction + spatial + KL (the generator side; the adversary is trained by the task when enabled)."""

    def __init__(self, config: CodecLossConfig | None = None, sample_rate: int = 24000):
        super().__init__()
        self.config = config or CodecLossConfig()
        self.sample_rate = sample_rate
        self.stft = MultiChannelSTFTLoss(self.config.fft_sizes, self.config.hop_fractions, self.config.stft_log_eps)
        self.mel = (LogMelLoss(sample_rate, self.config.mel_fft_sizes, self.config.mel_bands)
                    if self.config.mel_weight > 0 else None)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        terms = {
            "stft": self.stft(pred, target),
            "band_energy": band_energy_loss(pred, target, c.band_energy_n_fft, c.band_energy_bands),
            "long_term_band": band_energy_loss(pred, target, c.band_energy_n_fft, c.band_energy_bands,
                                               region_frames=None),
            "level": level_loss(pred, target),
            **spatial_terms(pred, target, c.spatial_n_fft, c.spatial_bands, c.spatial_region_frames),
            "kl": kl_loss(mean, std),
        }
        if c.partial_weight > 0:
            terms["partial"] = partial_level_loss(pred, target, self.sample_rate, c.partial_harmonics)
        if self.mel is not None:
            terms["mel"] = self.mel(pred, target)
        weights = {"mel": c.mel_weight, "stft": c.stft_weight, "band_energy": c.band_energy_weight,
                   "long_term_band": c.long_term_band_weight, "level": c.level_weight,
                   "direction": c.spatial_weight, "diffuseness": c.spatial_weight,
                   "intensity_vector": c.intensity_weight, "broadband": c.broadband_weight, "partial": c.partial_weight,
                   "kl": c.kl_weight}
        total = sum(weights[name] * value for name, value in terms.items())
        return total, {f"loss_{name}": value.item() for name, value in terms.items()}
