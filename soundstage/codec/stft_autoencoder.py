"""Frame-rate FOA autoencoder (the ``small``/``tiny`` codec): STFT features -> ConvNeXt over frames -> latent -> back.

Why this shape (see also the package docstring): a 4-channel waveform autoencoder spends its compute at the sample
rate (24,000 steps per second per layer); this one works at the STFT frame rate (94 frames per second before, 47
after the single stride-2 step), which is what makes it trainable on two CPU cores.

Direction lives in the inter-channel relations of FOA. Both ends of the network are written in those terms:

- **encoder input** per time-frequency bin: the log magnitude of each of the 4 channels and the cross-spectra
  ``conj(W) V_c / E`` (c in X, Y, Z; real part = normalised active intensity, imaginary part = reactive), which are
  bounded by 1, independent of loudness and of the absolute phase, so the network sees direction directly;
- **decoder output** per bin: W as a Vocos head (log magnitude and phase) and each of X, Y, Z as a complex gain
  relative to W, ``V_c = (a_c + i b_c) W``. Then the active intensity of the reconstruction is ``a_c |W|^2``: its
  direction is set by three real numbers per bin, whatever phase the decoder invents for W, so the sign and balance
  of W vs X/Y/Z (the direction) cannot be lost to phase errors.

The inverse STFT is an overlap-add with "same" padding (``n_fft - hop`` split over both ends), so ``N`` frames give
exactly ``N * hop`` samples.

**Experimental phase options** (config flags, all off in the presets and in the bundled codec). The bundled codec
mutes steady tones (a 1-kHz tone comes back ~57 dB down, ``soundstage.codec.evaluate.steady_tone_check``). Three
decoder changes follow from the physics of a steady sound, and each is tested for what it claims; trained from
scratch they did *not* bring tones back, and within this machine's budget they trained to worse direction accuracy
(measured below), so they stay options (``soundstage train codec --set phase_advance=true ...``), not defaults.

- ``phase_advance``: a shift-invariant decoder gives a steady sound the same head output in every frame, but a
  steady sinusoid at bin ``k``'s centre advances by ``2 pi k stft_hop / n_fft`` per frame (``pi k / 2`` at 75 %
  overlap): taken as is, the overlapping frames of every bin with ``k mod 4 != 0`` interfere destructively
  (``k mod 4 = 2`` keeps nothing). With the flag the head's phase is relative to that advance, so a constant output
  overlap-adds coherently.
- ``cumulative_phase``: with the advance alone a constant output is a tone only at a bin's centre (a tone 0.37 bin
  off centre comes back as its two neighbouring centre tones, a third of its energy away from its frequency). With
  the flag the head's phase output is an increment per frame and the phase its running sum (the
  instantaneous-frequency form of phase-vocoder synthesis): a constant increment is a tone at any frequency. A
  shift-invariant decoder still cannot choose each bin's starting phase, so one tone's bins add with arbitrary
  relative phases (3.6 dB lost for that tone, which the magnitudes can make up).
- ``steady_upsampling``: a stride-2 transposed convolution weights the even and odd output frames differently, so a
  constant latent decodes into frames whose phase alternates; with the flag both frames use the mean of the two taps
  (same parameter shapes, so older weights load).

Measured (4,000 steps from scratch on one core each, test split): advance + steady upsampling 19.9 deg direction
error median / 3.78 dB W band error; all three 14.1 deg / 3.70 dB; the bundled codec without them (6,000 steps)
8.45 deg / 3.14 dB. The runs' validation curves were still falling at 4,000 steps, so an equal-budget comparison is
open (``benchmarks/results/codec_small/phase_options/``). Tones still came back 45-80 dB down with every option:
the loss is in the magnitudes, not the phase (with noise added to a tone, the noise comes back and the tone does
not), i.e. the decoder does not learn narrow spectral peaks from this data in this budget. Nor did a log floor
of 1e-3 in the MRSTFT loss (``CodecLossConfig.stft_log_eps``, which does stop near-silent bins from dominating) or
a log-mel term, in fine-tunes of 500-1,000 steps. The cause is the head (next paragraph).

**Head rank** (``head_hidden``, off in the presets). The bundled codec returns 31 % of the valid clips (beeps,
chirps, horns, plucked and struck notes) more than 6 dB too quiet, and their direction error is twice the others'
(median 5.0 vs 2.3 deg; 11.9 vs 5.0 before direction latents). Measured before direction latents: probes on a
Morse-code beep (750 Hz, 31.6 dB peak in its STFT bin), each optimising one stage of the trained decoder's input for
300 Adam steps with the training loss and everything after it fixed: free per-bin head outputs reach the peak in 100
steps (31.7 dB, level error 0.0 dB), so the loss, the phase and the inverse STFT can all make it; free 192-dim
features after the last LayerNorm do not (0.3 dB, level -2.4 dB), nor do free features before it (-1.1 dB, level
-15.5 dB), nor free latents (-0.5 dB, level -27.6 dB). The per-frame spectrum is a linear map of 192 features (8 x
513 outputs), and the trained map spans smooth envelopes, not a narrow peak at an arbitrary bin. ``head_hidden > 0``
adds a nonlinear residual head (1x1 conv, GELU, 1x1 conv) whose output starts at zero, so the bundled decoder can be
grown into it (``--init-from small --set head_hidden=1024``). Trained alone on that one beep, such a head brings it
back in 50 steps (level -23.3 -> -0.7 dB), but that is memorisation: trained (alone, 300 steps of 4 crops) on the
164 train clips whose captions name a pitched source, its loss hardly moves and the 38 such valid clips gain 1 dB
(-10.3 -> -9.2 dB median). The latents hold little pitch: a quadratic ridge regression from 5 latent frames to the W
spectrum's peak frequency (frames with a peak 25 dB over the frame's median; 22,497 train / 4,616 valid frames of
those clips) misses by 6.3 semitones (median; 13.6 for always guessing the mean), within a semitone for 9 %. An
encoder trained beside a head that could not use pitch had no reason to keep it, so the head and the encoder must
learn it together. Grown onto the bundled codec and fine-tuned for 1,500 steps on one core (47 min, everything
trained at lr 3e-4; or 40 min, only the head at lr 1e-3 with ``--train-only decoder.head_mlp``), the full valid
split reads 6.24 / 6.23 deg (the codec then bundled: 6.19) with the same 38 clips still more than 6 dB too quiet. So
it stays off in the presets; longer (GPU-scale) training is the next test.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

W_IDX, X_IDX, Y_IDX, Z_IDX = 0, 3, 1, 2
VECTOR_CHANNELS = (X_IDX, Y_IDX, Z_IDX)  # AmbiX channel of x, y, z
NUM_FEATURES = 10  # 4 log magnitudes + 3 x (real, imag) normalised cross-spectra
NUM_OUTPUTS = 8  # W log magnitude, W phase, 3 x (real, imag) relative gains


def stft_same(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT ``(B, C, F, T // hop)`` of ``(B, C, T)`` audio (``T`` a multiple of ``hop``), Hann window."""
    b, c, t = audio.shape
    pad = (n_fft - hop) // 2
    x = F.pad(audio.reshape(b * c, 1, t), (pad, pad), mode="reflect" if t > pad else "constant").squeeze(1)
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)
    return spec.reshape(b, c, spec.shape[-2], spec.shape[-1])


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


def bin_phase_advance(bins: int, frames: int, n_fft: int, hop: int, device: torch.device | None = None) -> torch.Tensor:
    """``(bins, frames)`` phase of a steady sinusoid at each bin's centre frequency in each frame, in ``[0, 2 pi)``.

    ``2 pi k hop n / n_fft`` for bin ``k`` and frame ``n``, computed in integers modulo ``n_fft`` so that it stays
    exact for long signals.
    """
    k = torch.arange(bins, device=device)[:, None]
    n = torch.arange(frames, device=device)[None, :]
    return ((k * n * hop) % n_fft).float() * (2.0 * math.pi / n_fft)


def foa_features(spec: torch.Tensor) -> torch.Tensor:
    """``(B, 4, F, N)`` complex FOA spectra -> ``(B, 10 * F, N)`` loudness- and phase-invariant features."""
    mag = spec.abs()
    log_mag = torch.log(mag.clamp_min(1e-5))  # (B, 4, F, N)
    w = spec[:, W_IDX]
    v = spec[:, list(VECTOR_CHANNELS)]  # (B, 3, F, N)
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


class SteadyUpsample(nn.ConvTranspose1d):
    """Stride-2 upsampling ``(B, D, L)`` -> ``(B, D, 2 L)`` that repeats each frame, then mixes channels (1x1).

    Stored as a ``ConvTranspose1d(D, D, 2, stride=2)`` whose two taps are averaged in the forward pass, so weights
    of a transposed-convolution decoder load unchanged (see the module doc, "steady upsampling").
    """

    def __init__(self, dim: int):
        super().__init__(dim, dim, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        weight = self.weight.mean(-1, keepdim=True).expand_as(self.weight)
        return F.conv_transpose1d(x, weight, self.bias, stride=2)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of ``(B, D, N)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class STFTEncoder(nn.Module):
    """``(B, 4, T)`` audio (``T`` a multiple of the latent hop) -> ``(B, 2 * C, T / hop)`` posterior parameters."""

    def __init__(self, n_fft: int, stft_hop: int, hop: int, dim: int, latent_channels: int, frame_blocks: int,
                 latent_blocks: int, kernel_size: int, mlp_ratio: float):
        super().__init__()
        self.n_fft, self.stft_hop = n_fft, stft_hop
        bins = n_fft // 2 + 1
        self.embed = nn.Conv1d(NUM_FEATURES * bins, dim, kernel_size=1)
        self.embed_norm = ChannelNorm(dim)
        self.frame_blocks = nn.Sequential(*[ConvNeXtBlock(dim, kernel_size, mlp_ratio) for _ in range(frame_blocks)])
        stages = round(math.log2(hop // stft_hop))
        self.down = nn.Sequential(*[nn.Sequential(ChannelNorm(dim), nn.Conv1d(dim, dim, 2, stride=2))
                                    for _ in range(stages)])
        self.latent_blocks = nn.Sequential(*[ConvNeXtBlock(dim, kernel_size, mlp_ratio) for _ in range(latent_blocks)])
        self.out_norm = ChannelNorm(dim)
        self.out = nn.Conv1d(dim, 2 * latent_channels, kernel_size=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        feats = foa_features(stft_same(audio, self.n_fft, self.stft_hop))
        x = self.frame_blocks(self.embed_norm(self.embed(feats)))
        x = self.latent_blocks(self.down(x))
        return self.out(self.out_norm(x))


class STFTDecoder(nn.Module):
    """``(B, C, L)`` latent -> ``(B, 4, L * hop)`` audio through a W-relative complex spectrum head."""

    def __init__(self, n_fft: int, stft_hop: int, hop: int, dim: int, latent_channels: int, frame_blocks: int,
                 latent_blocks: int, kernel_size: int, mlp_ratio: float, phase_advance: bool = False,
                 steady_upsampling: bool = False, cumulative_phase: bool = False, head_hidden: int = 0):
        super().__init__()
        self.n_fft, self.stft_hop = n_fft, stft_hop
        self.phase_advance, self.cumulative_phase = phase_advance, cumulative_phase
        self.bins = n_fft // 2 + 1
        self.embed = nn.Conv1d(latent_channels, dim, kernel_size=3, padding=1)
        self.embed_norm = ChannelNorm(dim)
        self.latent_blocks = nn.Sequential(*[ConvNeXtBlock(dim, kernel_size, mlp_ratio) for _ in range(latent_blocks)])
        stages = round(math.log2(hop // stft_hop))
        self.up = nn.Sequential(*[
            nn.Sequential(ChannelNorm(dim), SteadyUpsample(dim) if steady_upsampling else nn.ConvTranspose1d(dim, dim, 2, 2))
            for _ in range(stages)
        ])
        self.frame_blocks = nn.Sequential(*[ConvNeXtBlock(dim, kernel_size, mlp_ratio) for _ in range(frame_blocks)])
        self.out_norm = ChannelNorm(dim)
        self.head = nn.Conv1d(dim, NUM_OUTPUTS * self.bins, kernel_size=1)
        # optional nonlinear residual head (module doc, "head rank"); its output layer starts at zero, so a decoder
        # grown from one without it starts out giving the same output
        self.head_mlp = None
        if head_hidden > 0:
            self.head_mlp = nn.Sequential(nn.Conv1d(dim, head_hidden, 1), nn.GELU(),
                                          nn.Conv1d(head_hidden, NUM_OUTPUTS * self.bins, 1))
            nn.init.zeros_(self.head_mlp[2].weight)
            nn.init.zeros_(self.head_mlp[2].bias)
        # per-bin output equaliser, set from the codec config (not saved with the weights)
        self.register_buffer("output_gain", torch.ones(self.bins), persistent=False)

    def set_output_gain(self, gain: torch.Tensor) -> None:
        """``(F,)`` linear gain applied to every channel's spectrum (the codec's calibrated output equaliser)."""
        if gain.shape != (self.bins,):
            raise ValueError(f"output gain must have shape ({self.bins},), got {tuple(gain.shape)}")
        self.output_gain = gain.to(self.output_gain)

    def spectrum(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, C, L)`` -> complex ``(B, 4, F, L * hop / stft_hop)`` AmbiX spectra."""
        x = self.latent_blocks(self.embed_norm(self.embed(latent)))
        x = self.frame_blocks(self.up(x))
        features = self.out_norm(x)
        out = self.head(features)
        if self.head_mlp is not None:
            out = out + self.head_mlp(features)
        b, _, n = out.shape
        out = out.reshape(b, NUM_OUTPUTS, self.bins, n)
        # exp of a clamped log magnitude: bounded like Vocos, so early training cannot overflow the iSTFT
        magnitude = torch.exp(out[:, 0].clamp(max=6.0)) * self.output_gain[:, None]
        phase = out[:, 1]
        if self.cumulative_phase:  # the head gives each frame's phase increment (module doc); float64 keeps it exact
            phase = torch.remainder(phase.double().cumsum(-1), 2.0 * math.pi).to(out.dtype)
        if self.phase_advance:  # the head's phase is relative to a steady sinusoid at the bin centre (module doc)
            phase = phase + bin_phase_advance(self.bins, n, self.n_fft, self.stft_hop, out.device).to(phase.dtype)
        w = torch.polar(magnitude, phase)
        gains = torch.complex(out[:, 2:5], out[:, 5:8])  # (B, 3, F, N) relative to W, in x, y, z order
        v = gains * w.unsqueeze(1)
        # AmbiX order W, Y, Z, X
        return torch.stack((w, v[:, 1], v[:, 2], v[:, 0]), dim=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        spec = self.spectrum(latent)
        b, c, f, n = spec.shape
        audio = istft_same(spec.reshape(b * c, f, n), self.n_fft, self.stft_hop)
        return audio.reshape(b, c, -1)
