"""The frame-rate FOA autoencoder behind ``FOACodecConfig(arch="stft")`` (presets ``small`` and ``tiny``).

STFT (``n_fft``, ``stft_hop``) of all four channels -> ConvNeXt blocks over frames -> stride-2 steps down to the
latent hop -> posterior parameters; the decoder mirrors it up to a per-bin spectrum and an inverse STFT. It works at
the STFT frame rate, not the sample rate, which is what makes it trainable on two CPU cores (docs/codec.md).

Direction lives in the inter-channel relations of FOA, so both ends are written in those terms:

- encoder input per bin: each channel's log magnitude and the cross-spectra ``conj(W) V_c / E`` (c in x, y, z),
  bounded by 1 and independent of loudness and absolute phase, so the network sees direction directly;
- decoder output per bin: W as a Vocos head (log magnitude, phase) and X, Y, Z as complex gains relative to W,
  ``V_c = (a_c + i b_c) W``; the reconstruction's active intensity is then ``a_c |W|^2``, so the direction is set
  by three real numbers per bin whatever phase the decoder invents for W.

The STFT pair uses "same" padding (``n_fft - stft_hop`` split over both ends): ``N`` frames give ``N * stft_hop``
samples. :class:`STFTBackbone` is what ``FOACodec`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundstage.common.stft import stft
from soundstage.foa import XYZ

from .direction_latents import NUM_DIRECTION_CHANNELS, ambix_from_w_xyz
from .pitch_track import NUM_PITCH_CHANNELS, f0_from_latents, harmonic_bank

if TYPE_CHECKING:
    from .model import FOACodecConfig

NUM_FEATURES = 10  # 4 log magnitudes + 3 x (real, imag) normalised cross-spectra
NUM_OUTPUTS = 8  # W log magnitude, W phase, 3 x (real, imag) relative gains
W = 0  # AmbiX channel of W


def stft_same(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT ``(B, C, F, T // hop)`` of ``(B, C, T)`` audio (``T`` a multiple of ``hop``), Hann window."""
    pad = (n_fft - hop) // 2
    x = F.pad(audio, (pad, pad), mode="reflect" if audio.shape[-1] > pad else "constant")
    return stft(x, n_fft, hop, center=False)


def istft_same(spec: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Inverse of :func:`stft_same`: ``(B, F, N)`` complex -> ``(B, N * hop)`` by windowed overlap-add."""
    n = spec.shape[-1]
    pad = (n_fft - hop) // 2
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, N)
    total = (n - 1) * hop + n_fft
    out = F.fold(frames, output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop))[:, 0, 0]
    envelope = F.fold(
        window.square().expand(1, n, -1).transpose(1, 2), output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop)
    )[0, 0, 0]
    out = out[:, pad : total - pad]
    return out / envelope[pad : total - pad].clamp_min(1e-8)


def foa_features(spec: torch.Tensor) -> torch.Tensor:
    """``(B, 4, F, N)`` complex FOA spectra -> ``(B, 10 * F, N)`` loudness- and phase-invariant features."""
    mag = spec.abs()
    log_mag = torch.log(mag.clamp_min(1e-5))  # (B, 4, F, N)
    w = spec[:, W]
    v = spec[:, list(XYZ)]  # (B, 3, F, N)
    energy = 0.5 * (mag[:, 0].square() + mag[:, 1:].square().sum(1))  # (B, F, N)
    floor = 1e-10 + 1e-6 * energy.flatten(1).amax(1)[:, None, None]
    cross = torch.conj(w).unsqueeze(1) * v / (energy + floor).unsqueeze(1)  # |.| <= 1
    feats = torch.cat((log_mag / 5.0, cross.real, cross.imag), dim=1)  # log_mag / 5: roughly unit range
    return feats.flatten(1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over frames -> LayerNorm -> pointwise MLP -> layer scale, residual. ``(B, D, N)`` -> same."""

    def __init__(self, dim: int, kernel_size: int, mlp_ratio: float, layer_scale: float = 1e-2):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of ``(B, D, N)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _blocks(count: int, dim: int, kernel_size: int, mlp_ratio: float) -> nn.Sequential:
    return nn.Sequential(*[ConvNeXtBlock(dim, kernel_size, mlp_ratio) for _ in range(count)])


class STFTEncoder(nn.Module):
    """``(B, 4, T)`` audio (``T`` a multiple of the latent hop) -> ``(B, 2 * C, T / hop)`` posterior parameters."""

    def __init__(self, n_fft: int, stft_hop: int, hop: int, dim: int, latent_channels: int, frame_blocks: int,
                 latent_blocks: int, kernel_size: int, mlp_ratio: float):
        super().__init__()
        self.n_fft, self.stft_hop = n_fft, stft_hop
        bins = n_fft // 2 + 1
        self.embed = nn.Conv1d(NUM_FEATURES * bins, dim, kernel_size=1)
        self.embed_norm = ChannelNorm(dim)
        self.frame_blocks = _blocks(frame_blocks, dim, kernel_size, mlp_ratio)
        stages = round(math.log2(hop // stft_hop))
        self.down = nn.Sequential(*[nn.Sequential(ChannelNorm(dim), nn.Conv1d(dim, dim, 2, stride=2))
                                    for _ in range(stages)])
        self.latent_blocks = _blocks(latent_blocks, dim, kernel_size, mlp_ratio)
        self.out_norm = ChannelNorm(dim)
        self.out = nn.Conv1d(dim, 2 * latent_channels, kernel_size=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        feats = foa_features(stft_same(audio, self.n_fft, self.stft_hop))
        x = self.frame_blocks(self.embed_norm(self.embed(feats)))
        x = self.latent_blocks(self.down(x))
        return self.out(self.out_norm(x))


class STFTDecoder(nn.Module):
    """``(B, C, L)`` latent -> ``(B, 4, L * hop)`` audio through a W-relative complex spectrum head.

    With ``harmonics > 0`` a harmonic branch adds, to W, ``harmonics`` oscillators at the multiples of the fundamental
    in latent channel ``pitch_channel`` (:mod:`.pitch_track`), with amplitudes predicted per latent frame from the
    latent-rate features (``exp`` of a clamped log amplitude, starting near silence)."""

    def __init__(self, n_fft: int, stft_hop: int, hop: int, dim: int, latent_channels: int, frame_blocks: int,
                 latent_blocks: int, kernel_size: int, mlp_ratio: float, sample_rate: int = 24_000,
                 harmonics: int = 0, pitch_channel: int | None = None):
        super().__init__()
        self.n_fft, self.stft_hop, self.hop, self.sample_rate = n_fft, stft_hop, hop, sample_rate
        self.bins = n_fft // 2 + 1
        self.embed = nn.Conv1d(latent_channels, dim, kernel_size=3, padding=1)
        self.embed_norm = ChannelNorm(dim)
        self.latent_blocks = _blocks(latent_blocks, dim, kernel_size, mlp_ratio)
        stages = round(math.log2(hop // stft_hop))
        self.up = nn.Sequential(*[nn.Sequential(ChannelNorm(dim), nn.ConvTranspose1d(dim, dim, 2, 2))
                                  for _ in range(stages)])
        self.frame_blocks = _blocks(frame_blocks, dim, kernel_size, mlp_ratio)
        self.out_norm = ChannelNorm(dim)
        self.head = nn.Conv1d(dim, NUM_OUTPUTS * self.bins, kernel_size=1)
        with torch.no_grad():  # start quiet (log magnitude -5) rather than at unit magnitude in every bin
            self.head.bias[: self.bins].fill_(-5.0)
            self.head.weight[: 2 * self.bins].mul_(0.1)
        # per-bin output equaliser, set from the codec config (not saved with the weights)
        self.register_buffer("output_gain", torch.ones(self.bins), persistent=False)
        if harmonics > 0 and pitch_channel is None:
            raise ValueError("a harmonic branch (harmonics > 0) needs the pitch_channel it follows")
        self.pitch_channel = pitch_channel if harmonics > 0 else None
        self.harmonic_head = nn.Conv1d(dim, harmonics, kernel_size=1) if harmonics > 0 else None
        if self.harmonic_head is not None:
            with torch.no_grad():
                self.harmonic_head.bias.fill_(-7.0)  # ~1e-3: the branch starts quiet
                self.harmonic_head.weight.mul_(0.1)

    def set_output_gain(self, gain: torch.Tensor) -> None:
        """``(F,)`` linear gain applied to every channel's spectrum (the codec's calibrated output equaliser)."""
        if gain.shape != (self.bins,):
            raise ValueError(f"output gain must have shape ({self.bins},), got {tuple(gain.shape)}")
        self.output_gain = gain.to(self.output_gain)

    def _latent_features(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, C, L)`` -> ``(B, dim, L)`` features at the latent rate (shared by the spectrum and harmonic heads)."""
        return self.latent_blocks(self.embed_norm(self.embed(latent)))

    def spectrum(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, C, L)`` -> complex ``(B, 4, F, L * hop / stft_hop)`` AmbiX spectra."""
        return self._spectrum(self._latent_features(latent))

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.out_norm(self.frame_blocks(self.up(x))))
        b, _, n = out.shape
        out = out.reshape(b, NUM_OUTPUTS, self.bins, n)
        # exp of a clamped log magnitude: bounded like Vocos, so early training cannot overflow the iSTFT
        magnitude = torch.exp(out[:, 0].clamp(max=6.0)) * self.output_gain[:, None]
        w = torch.polar(magnitude, out[:, 1])
        gains = torch.complex(out[:, 2:5], out[:, 5:8])  # (B, 3, F, N) relative to W, in x, y, z order
        return ambix_from_w_xyz(w, gains * w.unsqueeze(1))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self._latent_features(latent)
        spec = self._spectrum(x)
        b, c, f, n = spec.shape
        audio = istft_same(spec.reshape(b * c, f, n), self.n_fft, self.stft_hop).reshape(b, c, -1)
        if self.harmonic_head is not None:
            f0 = f0_from_latents(latent[:, self.pitch_channel : self.pitch_channel + NUM_PITCH_CHANNELS])
            amplitudes = torch.exp(self.harmonic_head(x).clamp(max=1.0))  # (B, K, L) peak amplitude per harmonic
            tonal = harmonic_bank(f0, amplitudes, self.sample_rate, self.hop)
            audio = torch.cat((audio[:, :1] + tonal[:, None], audio[:, 1:]), dim=1)
        return audio


class STFTBackbone(nn.Module):
    """The ``stft`` architecture: ``encode`` ``(B, 4, L * hop)`` -> ``(B, 2 * C, L)`` posterior parameters (means,
    then scales), ``decode`` ``(B, C, L)`` -> ``(B, 4, L * hop)`` audio."""

    def __init__(self, config: FOACodecConfig):
        super().__init__()
        self.sample_rate, self.n_fft = config.sample_rate, config.n_fft
        kwargs = {"n_fft": config.n_fft, "stft_hop": config.stft_hop, "hop": config.hop, "dim": config.dim,
                  "latent_channels": config.latent_channels, "kernel_size": config.kernel_size,
                  "mlp_ratio": config.mlp_ratio}
        self.encoder = STFTEncoder(frame_blocks=config.encoder_frame_blocks, latent_blocks=config.encoder_latent_blocks,
                                   **kwargs)
        harmonics = config.harmonics if config.pitch_latents else 0
        pitch_channel = config.latent_channels - NUM_DIRECTION_CHANNELS - NUM_PITCH_CHANNELS
        self.decoder = STFTDecoder(frame_blocks=config.decoder_frame_blocks, latent_blocks=config.decoder_latent_blocks,
                                   sample_rate=config.sample_rate, harmonics=harmonics, pitch_channel=pitch_channel,
                                   **kwargs)

    def encode(self, foa: torch.Tensor) -> torch.Tensor:
        return self.encoder(foa)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)

    def set_output_eq(self, hz: Sequence[float], db: Sequence[float]) -> None:
        """Gains ``db`` (dB) at frequencies ``hz`` (Hz), interpolated over log frequency onto the decoder's bins and
        held constant beyond the ends; empty: no equaliser."""
        bins = self.n_fft // 2 + 1
        if hz:
            freqs = np.arange(bins) * self.sample_rate / self.n_fft
            gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(hz), db)
        else:
            gain_db = np.zeros(bins)
        self.decoder.set_output_gain(torch.from_numpy(10.0 ** (gain_db / 20.0)).float())

    @torch.no_grad()
    def reorder_latent_channels(self, order: list[int], silenced: Sequence[int]) -> None:
        """Permute the latent channels to ``order`` (encoder outputs and decoder inputs alike) and zero the
        decoder's weights from the channels at the new positions ``silenced``, so that the decoder ignores them."""
        c = len(order)
        out = self.encoder.out  # rows: C means, then C scales
        rows = order + [c + ch for ch in order]
        out.weight.copy_(out.weight[rows])
        out.bias.copy_(out.bias[rows])
        embed = self.decoder.embed  # weight (dim, C, kernel)
        embed.weight.copy_(embed.weight[:, order])
        embed.weight[:, list(silenced)] = 0.0
