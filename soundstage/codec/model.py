"""``FOACodec``: a VAE that compresses 4-channel AmbiX audio 128x into a continuous latent for latent diffusion.

Two architectures share one interface (``encode`` / ``decode`` / ``save_pretrained`` / ``from_pretrained``):

- ``arch="stft"`` (presets ``small`` and ``tiny``), a frame-rate design chosen so the bundled codec trains on two CPU
  cores. Measured on this project's 2-core machine for one training step of 8 x 2 s at 24 kHz: a 4-channel waveform
  ``AutoencoderOobleck`` of 6.2 M parameters took ~24 s (every layer runs at the sample rate); a 1D-conv network over
  STFT frames (Vocos-like) of 12 M parameters took ~1.5 s. We take the second family and make it smaller still
  (3.96 M parameters, width 192; ~0.8 s per step of 8 x 1 s crops on one core, 75x real time encode+decode):
  STFT (n_fft 1024, hop 256) of all 4 channels -> ConvNeXt blocks over frames -> one stride-2 step to the latent
  hop of 512 samples with 16 latent channels (4 * 512 / 16 = 128) -> a mirrored decoder -> per-bin W spectrum
  (log magnitude + phase, Vocos head) and X, Y, Z as complex gains relative to W -> inverse STFT. The W-relative
  input features and output gains keep the direction (the sign and balance of W vs X/Y/Z) explicit at both ends;
  :mod:`soundstage.codec.stft_autoencoder` explains why.
- ``arch="oobleck"`` (preset ``paper``): diffusers' waveform-domain ``AutoencoderOobleck`` with 4 audio channels,
  hop 2048 and a 64-channel latent at 48 kHz, as in ImmerseDiffusion / Stable Audio Open. For GPUs.

With ``direction_latents`` (on in every preset) the last three latent channels are not learned: they carry each
latent frame's direction (the regression of x, y, z on W), and the decoder pans its output to obey them exactly
(:mod:`soundstage.codec.direction_latents`). A learned decoder alone leaves a reverberant clip's direction to the
net residue of many per-bin errors; with them the bundled codec's test-split direction error went from 9.0 to 2.1 deg.

Latents are ``(B, C, ceil(T / hop))``: inputs are zero-padded to a multiple of the hop and outputs trimmed back.
``encode`` returns the posterior mean (or a sample) multiplied by ``latent_scale``, a buffer measured after training
(:func:`measure_latent_scale`) so that latents have about unit variance for diffusion; ``decode`` divides it out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundstage.common.pretrained import PretrainedMixin

from .direction_latents import (
    DIRECTION_GAIN,
    DIRECTION_STD,
    NUM_DIRECTION_CHANNELS,
    frame_direction,
    impose_frame_direction,
)
from .stft_autoencoder import STFTDecoder, STFTEncoder

COMPRESSION = 128  # input values (4 channels x hop samples) per latent value
ARCHITECTURES = ("stft", "oobleck")


@dataclass
class FOACodecConfig:
    """Everything that defines a codec; saved as ``config.json``. ``hop`` is in samples at ``sample_rate``."""

    arch: str = "stft"  # "stft": frame-rate CPU design; "oobleck": diffusers waveform VAE (GPU)
    sample_rate: int = 24_000
    hop: int = 512  # audio samples per latent frame
    latent_channels: int = 16  # 4 * hop / latent_channels must be 128
    latent_scale: float = 1.0  # multiplies encoder latents; measured after training for ~unit variance
    # stft arch
    n_fft: int = 1024  # 43 ms window at 24 kHz: enough frequency resolution for intensity per bin
    stft_hop: int = 256  # frame hop; hop / stft_hop stride-2 steps lead to the latent rate
    dim: int = 192  # width of every ConvNeXt block
    mlp_ratio: float = 3.0
    kernel_size: int = 7  # depthwise kernel over frames
    encoder_frame_blocks: int = 1  # blocks at the STFT frame rate (costly: twice the frames)
    encoder_latent_blocks: int = 3  # blocks at the latent rate
    decoder_latent_blocks: int = 3
    decoder_frame_blocks: int = 2
    # experimental decoder options (stft_autoencoder doc): off in the presets (not shown to help; measured there)
    phase_advance: bool = False  # decoder phase relative to a steady sinusoid at each bin's centre
    steady_upsampling: bool = False  # decoder upsampling that keeps a steady latent steady
    cumulative_phase: bool = False  # decoder predicts phase increments per frame
    head_hidden: int = 0  # width of the decoder's nonlinear residual head (0: none; stft_autoencoder doc)
    # the last 3 latent channels carry each latent frame's x, y, z direction, which the decoder imposes
    # (soundstage.codec.direction_latents); on in the presets
    direction_latents: bool = False
    # output equaliser (stft arch), measured after training by calibrate_output_eq: gains in dB at frequencies in Hz,
    # interpolated over log frequency onto the decoder's bins (held constant beyond the ends); empty: none
    output_eq_hz: tuple[float, ...] = ()
    output_eq_db: tuple[float, ...] = ()
    # oobleck arch (diffusers AutoencoderOobleck); prod(oobleck_ratios) must equal hop
    oobleck_hidden: int = 128  # encoder_hidden_size: twice latent_channels (mean and scale)
    oobleck_ratios: tuple[int, ...] = (2, 4, 4, 8, 8)
    oobleck_multiples: tuple[int, ...] = (1, 2, 4, 8, 16)
    oobleck_decoder_channels: int = 128

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.sample_rate <= 0 or self.hop <= 0 or self.latent_channels <= 0:
            raise ValueError("sample_rate, hop and latent_channels must be positive")
        if 4 * self.hop != COMPRESSION * self.latent_channels:
            raise ValueError(
                f"4 * hop / latent_channels must be {COMPRESSION} (hop={self.hop}, latent_channels="
                f"{self.latent_channels} give {4 * self.hop / self.latent_channels:g})"
            )
        if not (math.isfinite(self.latent_scale) and self.latent_scale > 0):
            raise ValueError(f"latent_scale must be a positive finite number, got {self.latent_scale}")
        self.oobleck_ratios = tuple(self.oobleck_ratios)
        self.oobleck_multiples = tuple(self.oobleck_multiples)
        self.output_eq_hz = tuple(float(v) for v in self.output_eq_hz)
        self.output_eq_db = tuple(float(v) for v in self.output_eq_db)
        if self.output_eq_hz or self.output_eq_db:
            hz = np.asarray(self.output_eq_hz)
            if len(hz) != len(self.output_eq_db) or not np.isfinite(self.output_eq_db).all():
                raise ValueError("output_eq_db needs one finite gain (dB) per output_eq_hz frequency")
            if not (np.isfinite(hz).all() and (hz > 0).all() and (np.diff(hz) > 0).all()):
                raise ValueError(f"output_eq_hz must be positive and increasing, got {self.output_eq_hz}")
            if self.arch != "stft":
                raise ValueError("output_eq_hz/output_eq_db apply to the stft architecture only")
        if self.head_hidden < 0 or (self.head_hidden and self.arch != "stft"):
            raise ValueError(f"head_hidden must be >= 0 (0: no residual head) and is for the stft architecture only, "
                             f"got {self.head_hidden} with arch {self.arch!r}")
        if self.direction_latents and self.latent_channels <= NUM_DIRECTION_CHANNELS:
            raise ValueError(f"direction_latents takes the last {NUM_DIRECTION_CHANNELS} latent channels, so "
                             f"latent_channels must exceed {NUM_DIRECTION_CHANNELS}, got {self.latent_channels}")
        if self.arch == "stft":
            ratio = self.hop // self.stft_hop
            if self.hop % self.stft_hop or ratio & (ratio - 1):
                raise ValueError(f"hop / stft_hop must be a power of two, got {self.hop} / {self.stft_hop}")
            if self.n_fft < 2 * self.stft_hop or (self.n_fft - self.stft_hop) % 2:
                raise ValueError(f"n_fft must be >= 2 * stft_hop with n_fft - stft_hop even (n_fft={self.n_fft})")
        else:
            if math.prod(self.oobleck_ratios) != self.hop:
                raise ValueError(f"prod(oobleck_ratios)={math.prod(self.oobleck_ratios)} must equal hop={self.hop}")
            if self.oobleck_hidden != 2 * self.latent_channels:
                raise ValueError(
                    f"oobleck_hidden ({self.oobleck_hidden}) must be twice latent_channels ({self.latent_channels}): "
                    "the encoder outputs a mean and a scale per latent channel"
                )
            if len(self.oobleck_multiples) != len(self.oobleck_ratios):
                raise ValueError("oobleck_multiples needs one entry per downsampling ratio")


CODEC_PRESETS: dict[str, FOACodecConfig] = {
    "tiny": FOACodecConfig(
        sample_rate=8_000, hop=256, latent_channels=8, n_fft=256, stft_hop=128, dim=32, mlp_ratio=2.0,
        encoder_frame_blocks=1, encoder_latent_blocks=1, decoder_latent_blocks=1, decoder_frame_blocks=1,
        direction_latents=True,
    ),
    "small": FOACodecConfig(direction_latents=True),  # the bundled codec's recipe
    "paper": FOACodecConfig(arch="oobleck", sample_rate=48_000, hop=2048, latent_channels=64, oobleck_hidden=128,
                            direction_latents=True),
}


class CodecInputError(ValueError):
    """Audio that the codec cannot take: wrong shape or channel count, wrong sample rate, empty, NaN/Inf."""


class FOACodec(nn.Module, PretrainedMixin):
    """FOA VAE with a 128x compression. Audio ``(B, 4, T)`` AmbiX at ``config.sample_rate`` <-> latents ``(B, C, L)``."""

    config_class = FOACodecConfig
    format_name = "soundstage.codec"
    format_version = 1
    pretrained_subfolder = "codec"
    init_ignored_fields = ("latent_scale", "output_eq_hz", "output_eq_db")  # measured after training
    # settings that leave the weights' shapes alone: fine-tuning may cross them
    init_overridable_fields = ("phase_advance", "steady_upsampling", "cumulative_phase")
    # fields whose non-default value adds modules that start out as no-ops: a codec without them can be grown into one
    init_growable_fields: ClassVar[dict[str, str]] = {"head_hidden": "decoder.head_mlp."}

    def __init__(self, config: FOACodecConfig):
        super().__init__()
        self.config = config
        self.hop = config.hop
        self.sample_rate = config.sample_rate
        self.register_buffer("latent_scale", torch.tensor(float(config.latent_scale)))
        if config.arch == "stft":
            kwargs = {"n_fft": config.n_fft, "stft_hop": config.stft_hop, "hop": config.hop, "dim": config.dim,
                      "latent_channels": config.latent_channels, "kernel_size": config.kernel_size,
                      "mlp_ratio": config.mlp_ratio}
            self.encoder = STFTEncoder(frame_blocks=config.encoder_frame_blocks,
                                       latent_blocks=config.encoder_latent_blocks, **kwargs)
            self.decoder = STFTDecoder(frame_blocks=config.decoder_frame_blocks,
                                       latent_blocks=config.decoder_latent_blocks, phase_advance=config.phase_advance,
                                       steady_upsampling=config.steady_upsampling,
                                       cumulative_phase=config.cumulative_phase, head_hidden=config.head_hidden,
                                       **kwargs)
            self.set_output_eq(config.output_eq_hz, config.output_eq_db)
            with torch.no_grad():  # start quiet (log magnitude -5) rather than at unit magnitude in every bin
                bins = config.n_fft // 2 + 1
                self.decoder.head.bias[:bins].fill_(-5.0)
                self.decoder.head.weight[: 2 * bins].mul_(0.1)
        else:
            from diffusers import AutoencoderOobleck

            self.oobleck = AutoencoderOobleck(
                encoder_hidden_size=config.oobleck_hidden,
                downsampling_ratios=list(config.oobleck_ratios),
                channel_multiples=list(config.oobleck_multiples),
                decoder_channels=config.oobleck_decoder_channels,
                decoder_input_channels=config.latent_channels,
                audio_channels=4,
                sampling_rate=config.sample_rate,
            )

    # ------------------------------------------------------------------ checks
    def check_audio(self, foa: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Validate ``(B, 4, T)`` or ``(4, T)`` audio; returns it batched as float32. Raises CodecInputError."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise CodecInputError(
                f"audio at {sample_rate} Hz given, but this codec expects {self.sample_rate} Hz; resample it first "
                f"(soundstage.common.audio.resample)"
            )
        if not isinstance(foa, torch.Tensor):
            foa = torch.as_tensor(foa)
        if foa.dim() == 2:
            foa = foa.unsqueeze(0)
        if foa.dim() != 3 or foa.shape[1] != 4:
            raise CodecInputError(
                f"expected FOA audio shaped (batch, 4, samples) or (4, samples) with 4 AmbiX channels (W, Y, Z, X), "
                f"got shape {tuple(foa.shape)}"
            )
        if foa.shape[-1] == 0:
            raise CodecInputError("empty audio (0 samples): expected at least one sample per channel")
        if not torch.isfinite(foa).all():
            raise CodecInputError("audio contains NaN or Inf samples: expected finite values in [-1, 1]")
        return foa.float()

    def check_latent(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() == 2:
            latent = latent.unsqueeze(0)
        if latent.dim() != 3 or latent.shape[1] != self.config.latent_channels:
            raise CodecInputError(
                f"expected latents shaped (batch, {self.config.latent_channels}, frames), got {tuple(latent.shape)}"
            )
        if latent.shape[-1] == 0:
            raise CodecInputError("empty latent (0 frames)")
        if not torch.isfinite(latent).all():
            raise CodecInputError("latent contains NaN or Inf values")
        return latent

    # ------------------------------------------------------------------ core
    def _pad(self, foa: torch.Tensor) -> torch.Tensor:
        extra = (-foa.shape[-1]) % self.hop
        return F.pad(foa, (0, extra)) if extra else foa

    def posterior(self, foa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior ``(mean, std)``, each ``(B, C, ceil(T / hop))``, of already-checked audio."""
        foa = self._pad(foa)
        params = self.encoder(foa) if self.config.arch == "stft" else self.oobleck.encoder(foa)
        mean, scale = params.chunk(2, dim=1)
        std = F.softplus(scale) + 1e-4  # the Oobleck/Stable Audio parameterisation of the posterior scale
        if self.config.direction_latents:  # the last channels are measured, not learned (direction_latents doc)
            k = NUM_DIRECTION_CHANNELS
            mean = torch.cat((mean[:, :-k], DIRECTION_GAIN * frame_direction(foa, self.hop)), dim=1)
            std = torch.cat((std[:, :-k], torch.full_like(std[:, -k:], DIRECTION_STD)), dim=1)
        return mean, std

    def decode_unscaled(self, latent: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Audio ``(B, 4, length or L * hop)`` from unscaled latents (what training feeds the decoder)."""
        audio = self.decoder(latent) if self.config.arch == "stft" else self.oobleck.decoder(latent)
        if self.config.direction_latents:
            audio = impose_frame_direction(audio, latent[:, -NUM_DIRECTION_CHANNELS:] / DIRECTION_GAIN, self.hop)
        return audio[..., :length] if length is not None else audio

    def forward(self, foa: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: ``(reconstruction (B, 4, T), posterior mean, posterior std)``."""
        mean, std = self.posterior(foa)
        z = mean + std * torch.randn_like(mean) if sample else mean
        return self.decode_unscaled(z, foa.shape[-1]), mean, std

    # ------------------------------------------------------------------ public
    def encode(self, foa: torch.Tensor, sample: bool = False, sample_rate: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """AmbiX audio ``(B, 4, T)`` (or ``(4, T)``) -> latent ``(B, C, ceil(T / hop))`` times ``latent_scale``.

        Args:
            sample: draw from the posterior instead of returning its mean (the default, deterministic).
            sample_rate: the audio's rate in Hz; when given it must equal ``config.sample_rate``.
        """
        foa = self.check_audio(foa, sample_rate).to(self.latent_scale.device)
        mean, std = self.posterior(foa)
        if sample:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            mean = mean + std * noise
        return mean * self.latent_scale

    def decode(self, latent: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Scaled latent ``(B, C, L)`` -> AmbiX audio ``(B, 4, length or L * hop)`` at ``config.sample_rate``."""
        latent = self.check_latent(latent).to(self.latent_scale.device)
        return self.decode_unscaled(latent / self.latent_scale, length)

    def latent_length(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop)

    def set_latent_scale(self, value: float) -> None:
        """Set the latent scale (buffer and config) so that ``encode`` returns ~unit-variance latents."""
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"latent_scale must be a positive finite number, got {value}")
        self.latent_scale.fill_(value)
        self.config = dataclasses.replace(self.config, latent_scale=value)

    def set_output_eq(self, hz: Iterable[float], db: Iterable[float]) -> None:
        """Set the output equaliser (config and decoder): gains ``db`` at frequencies ``hz`` (stft arch only)."""
        if self.config.arch != "stft":
            raise ValueError("the output equaliser applies to the stft architecture only")
        self.config = dataclasses.replace(self.config, output_eq_hz=tuple(hz), output_eq_db=tuple(db))
        bins = self.config.n_fft // 2 + 1
        if self.config.output_eq_hz:
            freqs = np.arange(bins) * self.sample_rate / self.config.n_fft
            gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(self.config.output_eq_hz),
                                self.config.output_eq_db)
        else:
            gain_db = np.zeros(bins)
        self.decoder.set_output_gain(torch.from_numpy(10.0 ** (gain_db / 20.0)).float())

    def init_from_pretrained(self, path: str | Path) -> None:
        super().init_from_pretrained(path)
        if self.config.arch == "stft":  # the equaliser lives in the config, not in the weights
            self.set_output_eq(self.config.output_eq_hz, self.config.output_eq_db)

    def save_pretrained(self, path: str | Path) -> Path:
        # the buffer is the value in use (it travels with EMA/checkpoint state); mirror it into config.json
        self.config = dataclasses.replace(self.config, latent_scale=float(self.latent_scale))
        return super().save_pretrained(path)

    @torch.no_grad()
    def repurpose_as_direction_latents(self, channels: tuple[int, ...]) -> None:
        """Turn a trained stft codec without direction latents into one with them, in place (to fine-tune it).

        ``channels`` (three latent channels, best the least informative: those with the smallest posterior KL) are
        moved to the end in the given order and become the x, y, z direction channels; the decoder's weights from
        them are zeroed, so the network's output is what it was with those channels at zero.
        """
        c, k = self.config.latent_channels, NUM_DIRECTION_CHANNELS
        if self.config.arch != "stft" or self.config.direction_latents:
            raise ValueError("repurpose_as_direction_latents needs an stft codec without direction latents")
        if len(set(channels)) != k or not all(0 <= ch < c for ch in channels):
            raise ValueError(f"give {k} distinct latent channels in [0, {c}), got {channels}")
        order = [ch for ch in range(c) if ch not in channels] + list(channels)
        out = self.encoder.out  # rows: C means, then C scales
        rows = order + [c + ch for ch in order]
        out.weight.copy_(out.weight[rows])
        out.bias.copy_(out.bias[rows])
        embed = self.decoder.embed  # weight (dim, C, kernel)
        embed.weight.copy_(embed.weight[:, order])
        embed.weight[:, -k:] = 0.0
        self.config = dataclasses.replace(self.config, direction_latents=True)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def measure_latent_scale(codec: FOACodec, clips: Iterable[torch.Tensor], max_batches: int | None = None) -> float:
    """1 / standard deviation of the unscaled posterior means over ``clips`` (batches ``(B, 4, T)``).

    Set it with ``codec.set_latent_scale(...)`` after training, before export: the diffusion model then sees
    latents of ~unit variance. The mean is taken over every value of every batch (channels pooled).
    """
    was_training = codec.training
    codec.eval()
    total, total_sq, count = 0.0, 0.0, 0
    for i, clip in enumerate(clips):
        if max_batches is not None and i >= max_batches:
            break
        mean, _ = codec.posterior(codec.check_audio(clip).to(codec.latent_scale.device))
        total += float(mean.double().sum())
        total_sq += float(mean.double().square().sum())
        count += mean.numel()
    codec.train(was_training)
    if count == 0:
        raise ValueError("measure_latent_scale needs at least one clip")
    var = total_sq / count - (total / count) ** 2
    return 1.0 / math.sqrt(max(var, 1e-12))
