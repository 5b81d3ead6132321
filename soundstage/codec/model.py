"""``FOACodec``: a VAE that compresses 4-channel AmbiX audio 128x into a continuous latent for latent diffusion.

Audio ``(B, 4, T)`` at ``config.sample_rate`` <-> latents ``(B, C, ceil(T / hop))`` with ``4 * hop / C = 128``;
inputs are zero-padded to a multiple of the hop and outputs trimmed back. The architecture is a backbone chosen by
``config.arch``, each with ``encode(foa) -> posterior parameters`` and ``decode(latent) -> audio``:
``"stft"`` (:mod:`.stft_autoencoder`, presets ``tiny`` and ``small``: a frame-rate network that trains on two CPU
cores) and ``"oobleck"`` (:mod:`.oobleck`, preset ``paper``: the Stable Audio waveform VAE, for GPUs). The codec
around them is the same for both: the posterior (softplus scale), the direction latents, the latent scale and the
input checks.

With ``direction_latents`` (on in every preset) the last three latent channels are not learned: they carry each
latent frame's direction and the decoder pans its output to obey them (:mod:`.direction_latents`; per part of a
frame with ``direction_subframes``), because a learned decoder alone leaves a reverberant clip's direction to the net
residue of many per-bin errors. Before them
may come a measured pitch track (``pitch_latents``, :mod:`.pitch_track`) and W's level in a few bands
(``level_bands``, :mod:`.band_levels`), which the decoder likewise obeys.

``encode`` returns the posterior mean (or a sample) normalised for diffusion (:mod:`.latent_norm`): per channel by the
``latent_mean`` / ``latent_std`` measured at export when the config has them, else times the pooled ``latent_scale``
(:func:`measure_latent_scale`); ``decode`` undoes it and clamps the direction track to the unit ball
(:func:`.direction_latents.clamp_to_unit_ball`).
Measurements and the design record are in docs/codec.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundstage.common.compat import grad_only_for_input
from soundstage.common.pretrained import FormatError, PretrainedMixin, raise_if_configs_differ
from soundstage.foa import FOAInputError, check_foa

from .band_levels import LEVEL_STD, band_weights, frame_band_levels, impose_band_levels
from .direction_latents import (
    DIRECTION_GAIN,
    DIRECTION_STD,
    NUM_DIRECTION_CHANNELS,
    clamp_to_unit_ball,
    frame_direction,
    impose_frame_direction,
)
from .latent_norm import LatentNormalizer, check_latent_statistics, measure_latent_statistics
from .oobleck import OobleckBackbone
from .pitch_track import NUM_PITCH_CHANNELS, PITCH_STD, pitch_latents
from .stft_autoencoder import STFTBackbone

COMPRESSION = 128  # input values (4 channels x hop samples) per latent value
BACKBONES: dict[str, type[nn.Module]] = {"stft": STFTBackbone, "oobleck": OobleckBackbone}
ARCHITECTURES = tuple(BACKBONES)
# set after training, not by the recipe
MEASURED_FIELDS = ("latent_scale", "latent_mean", "latent_std", "output_eq_hz", "output_eq_db")
# options added after codecs were bundled, with the value that leaves a codec as it was before they existed: a config
# at these values is fingerprinted without them, so the latents and DiTs of earlier codecs keep their pairing
LATER_OPTIONS: dict[str, Any] = {"pitch_latents": False, "harmonics": 32, "latent_mean": [], "latent_std": [],
                                 "level_bands": 0}
# how the decoder post-processes, not what the latents mean, with their neutral values: left out of the fingerprint
# (codec/fingerprint.py), named in a pipeline's model hash when not neutral (the clips differ)
DECODE_ONLY_OPTIONS: dict[str, Any] = {"direction_subframes": 1}
# decoder options removed after measurement (docs/codec.md) with the value every saved codec has them at
RETIRED_FIELDS: dict[str, Any] = {"phase_advance": False, "steady_upsampling": False, "cumulative_phase": False,
                                  "head_hidden": 0}


@dataclass
class FOACodecConfig:
    """Everything that defines a codec; saved as ``config.json``. ``hop`` is in samples at ``sample_rate``."""

    arch: str = "stft"  # "stft": frame-rate CPU design; "oobleck": diffusers waveform VAE (GPU)
    sample_rate: int = 24_000
    hop: int = 512  # audio samples per latent frame
    latent_channels: int = 16  # 4 * hop / latent_channels must be 128
    latent_scale: float = 1.0  # multiplies encoder latents; measured after training for ~unit variance
    # per-channel statistics of the raw posterior means, measured at export; when set they replace latent_scale
    latent_mean: tuple[float, ...] = ()
    latent_std: tuple[float, ...] = ()
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
    # the last 3 latent channels carry each latent frame's x, y, z direction, which the decoder imposes
    direction_latents: bool = False
    # the decoder imposes the direction on this many equal parts of each latent frame, the track interpolated
    # linearly between frame centres: finer than the latent frame, so that the decoder's own direction inside a
    # frame cannot leak through (decode only: the latent space and the fingerprint stay the same)
    direction_subframes: int = 1
    # stft arch: the 2 latent channels before the direction channels carry a measured pitch track (log f0,
    # periodicity) and the decoder adds `harmonics` oscillators at its multiples (codec/pitch_track.py)
    pitch_latents: bool = False
    harmonics: int = 32
    # stft arch: with K > 0, the K latent channels before the pitch (or direction) channels carry W's level in K broad
    # bands per latent frame, and the decoder scales its output to them (codec/band_levels.py)
    level_bands: int = 0
    # output equaliser (stft arch), measured after training by calibrate_output_eq: gains in dB at frequencies in Hz,
    # interpolated over log frequency onto the decoder's bins (held constant beyond the ends); empty: none
    output_eq_hz: tuple[float, ...] = ()
    output_eq_db: tuple[float, ...] = ()
    # oobleck arch (diffusers AutoencoderOobleck); prod(oobleck_ratios) must equal hop
    oobleck_hidden: int = 128  # encoder_hidden_size: twice latent_channels (mean and scale)
    oobleck_ratios: tuple[int, ...] = (2, 4, 4, 8, 8)
    oobleck_multiples: tuple[int, ...] = (1, 2, 4, 8, 16)
    oobleck_decoder_channels: int = 128

    @property
    def learned_channels(self) -> int:
        """Latent channels the encoder learns: those not measured (band levels, pitch, direction)."""
        return (self.latent_channels - self.level_bands - NUM_PITCH_CHANNELS * self.pitch_latents
                - NUM_DIRECTION_CHANNELS * self.direction_latents)

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
        self.latent_mean = tuple(float(v) for v in self.latent_mean)
        self.latent_std = tuple(float(v) for v in self.latent_std)
        check_latent_statistics(self.latent_channels, self.latent_mean, self.latent_std)
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
        if self.direction_subframes < 1 or self.hop % self.direction_subframes:
            raise ValueError(f"direction_subframes must be a positive divisor of hop ({self.hop}), got "
                             f"{self.direction_subframes}")
        if self.direction_latents and self.latent_channels <= NUM_DIRECTION_CHANNELS:
            raise ValueError(f"direction_latents takes the last {NUM_DIRECTION_CHANNELS} latent channels, so "
                             f"latent_channels must exceed {NUM_DIRECTION_CHANNELS}, got {self.latent_channels}")
        if self.pitch_latents:
            # the harmonic branch adds to W only; the direction track pans it
            reserved = NUM_PITCH_CHANNELS + NUM_DIRECTION_CHANNELS
            if (self.arch != "stft" or not self.direction_latents or self.latent_channels <= reserved
                    or self.harmonics < 1):
                raise ValueError(f"pitch_latents needs the stft arch, direction_latents, harmonics >= 1 and more "
                                 f"than {reserved} latent channels (arch={self.arch!r}, direction_latents="
                                 f"{self.direction_latents}, harmonics={self.harmonics}, latent_channels="
                                 f"{self.latent_channels})")
        if self.level_bands and (self.arch != "stft" or self.level_bands < 2 or self.learned_channels < 1):
            raise ValueError(f"level_bands needs the stft arch, at least 2 bands and a learned latent channel left "
                             f"(arch={self.arch!r}, level_bands={self.level_bands}, "
                             f"{self.latent_channels - self.learned_channels} of {self.latent_channels} latent "
                             f"channels measured)")
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


class CodecBackbone(Protocol):
    """What ``FOACodec`` needs of an architecture (``BACKBONES``), built from a :class:`FOACodecConfig`."""

    def encode(self, foa: torch.Tensor) -> torch.Tensor:
        """``(B, 4, L * hop)`` audio -> ``(B, 2 * C, L)`` posterior parameters: C means, then C raw scales."""
        ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, C, L)`` unscaled latent -> ``(B, 4, L * hop)`` audio."""
        ...

    def set_output_eq(self, hz: Iterable[float], db: Iterable[float]) -> None:
        """Apply the output equaliser of the config (``output_eq_hz/db``)."""
        ...

    def reorder_latent_channels(self, order: list[int], silenced: Sequence[int]) -> None:
        """Permute latent channels to ``order`` and make the decoder ignore those at the new positions ``silenced``."""
        ...


class CodecInputError(FOAInputError):
    """Input that the codec cannot take: audio that is not FOA at its rate, or a latent of the wrong shape."""


class FOACodec(nn.Module, PretrainedMixin):
    """FOA VAE with a 128x compression. Audio ``(B, 4, T)`` AmbiX at ``config.sample_rate`` <-> latents ``(B, C, L)``."""

    config_class = FOACodecConfig
    format_name = "soundstage.codec"
    format_version = 1
    pretrained_subfolder = "codec"
    backbone: CodecBackbone

    def __init__(self, config: FOACodecConfig):
        super().__init__()
        self.config = config
        self.hop = config.hop
        self.sample_rate = config.sample_rate
        self.register_buffer("latent_scale", torch.tensor(float(config.latent_scale)))
        backbone = BACKBONES[config.arch](config)
        # the backbone's parts are registered on the codec itself, under their own names, so that the weights keep
        # the keys of the codec format (encoder.* and decoder.* for stft, oobleck.* for oobleck)
        object.__setattr__(self, "backbone", backbone)
        for name, part in backbone.named_children():
            self.add_module(name, part)
        self.backbone.set_output_eq(config.output_eq_hz, config.output_eq_db)
        if config.level_bands:
            self._register_level_weights()

    def _register_level_weights(self) -> None:
        """The ``(K, F)`` band weights of ``config.level_bands``, derived from the config (not saved)."""
        c = self.config
        self.register_buffer("level_weights", band_weights(c.level_bands, c.n_fft, c.sample_rate), persistent=False)

    @property
    def level_channels(self) -> slice:
        """Where the band-level channels sit in a latent: after the learned ones, before pitch and direction."""
        start = self.config.learned_channels
        return slice(start, start + self.config.level_bands)

    @classmethod
    def config_from_values(cls, values: dict[str, Any]) -> FOACodecConfig:
        """Codec folders written before the experimental decoder options were removed list them, off: those are
        dropped; a folder with one of them on needs the soundstage that trained it."""
        on = {k: values[k] for k, off in RETIRED_FIELDS.items() if k in values and values[k] != off}
        if on:
            raise FormatError(f"this codec uses decoder options that this soundstage no longer has ({on}; "
                              "docs/codec.md records them): load it with the soundstage version that trained it")
        return super().config_from_values({k: v for k, v in values.items() if k not in RETIRED_FIELDS})

    # ------------------------------------------------------------------ checks
    def check_audio(self, foa: Any, sample_rate: int | None = None) -> torch.Tensor:
        """Validate ``(B, 4, T)`` or ``(4, T)`` float audio (``soundstage.foa.check_foa``); returns it batched as
        float32. Raises CodecInputError (an FOAInputError)."""
        try:
            return check_foa(foa, sample_rate, self.sample_rate, what="codec input")
        except FOAInputError as exc:
            raise CodecInputError(str(exc)) from exc

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
        mean, scale = self.backbone.encode(foa).chunk(2, dim=1)
        std = F.softplus(scale) + 1e-4  # the Oobleck/Stable Audio parameterisation of the posterior scale
        # the last channels are measured, not learned: band levels, pitch, then direction (their modules' docs)
        measured, fixed_std = [], []
        if self.config.level_bands:
            c = self.config
            measured.append(frame_band_levels(foa[:, 0], self.level_weights, c.n_fft, c.stft_hop, self.hop))
            fixed_std.append(LEVEL_STD)
        if self.config.pitch_latents:
            measured.append(pitch_latents(foa[:, 0], self.sample_rate, self.hop))
            fixed_std.append(PITCH_STD)
        if self.config.direction_latents:
            measured.append(DIRECTION_GAIN * frame_direction(foa, self.hop))
            fixed_std.append(DIRECTION_STD)
        if measured:
            k = sum(m.shape[1] for m in measured)
            stds = [torch.full_like(m, s) for m, s in zip(measured, fixed_std)]
            mean = torch.cat((mean[:, :-k], *measured), dim=1)
            std = torch.cat((std[:, :-k], *stds), dim=1)
        return mean, std

    def decode_unscaled(self, latent: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Audio ``(B, 4, length or L * hop)`` from unscaled latents (what training feeds the decoder)."""
        audio = self.backbone.decode(latent)
        if self.config.level_bands:
            c = self.config
            audio = impose_band_levels(audio, latent[:, self.level_channels], self.level_weights, c.n_fft, c.stft_hop,
                                       self.hop)
        if self.config.direction_latents:
            direction = latent[:, -NUM_DIRECTION_CHANNELS:] / DIRECTION_GAIN
            parts = self.config.direction_subframes
            if parts > 1:
                direction = F.interpolate(direction, scale_factor=parts, mode="linear", align_corners=False)
            audio = impose_frame_direction(audio, direction, self.hop // parts)
        return audio[..., :length] if length is not None else audio

    def forward(self, foa: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: ``(reconstruction (B, 4, T), posterior mean, posterior std)``."""
        mean, std = self.posterior(foa)
        z = mean + std * torch.randn_like(mean) if sample else mean
        return self.decode_unscaled(z, foa.shape[-1]), mean, std

    # ------------------------------------------------------------------ public
    @grad_only_for_input
    def encode(self, foa: torch.Tensor, sample: bool = False, sample_rate: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """AmbiX audio ``(B, 4, T)`` (or ``(4, T)``) -> normalised latent ``(B, C, ceil(T / hop))``.

        Args:
            sample: draw from the posterior instead of returning its mean (the default, deterministic).
            sample_rate: the audio's rate in Hz; when given it must equal ``config.sample_rate``.
        """
        foa = self.check_audio(foa, sample_rate).to(self.latent_scale.device)
        mean, std = self.posterior(foa)
        if sample:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            mean = mean + std * noise
        return self.latent_normalizer.normalize(mean)

    @grad_only_for_input
    def decode(self, latent: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Normalised latent ``(B, C, L)`` -> AmbiX audio ``(B, 4, length or L * hop)`` at ``config.sample_rate``."""
        raw = self.latent_normalizer.denormalize(self.check_latent(latent).to(self.latent_scale.device))
        if self.config.direction_latents:
            k = NUM_DIRECTION_CHANNELS
            raw = torch.cat((raw[:, :-k], DIRECTION_GAIN * clamp_to_unit_ball(raw[:, -k:] / DIRECTION_GAIN)), dim=1)
        return self.decode_unscaled(raw, length)

    @property
    def latent_normalizer(self) -> LatentNormalizer:
        """The map from raw posterior means to the latents ``encode`` returns (:mod:`.latent_norm`)."""
        c = self.config
        return LatentNormalizer.from_statistics(c.latent_channels, float(self.latent_scale), c.latent_mean,
                                                c.latent_std)

    def latent_length(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop)

    def set_latent_scale(self, value: float) -> None:
        """Set the latent scale (buffer and config) so that ``encode`` returns ~unit-variance latents."""
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"latent_scale must be a positive finite number, got {value}")
        self.latent_scale.fill_(value)
        self.config = dataclasses.replace(self.config, latent_scale=value)

    def set_latent_statistics(self, mean: Iterable[float], std: Iterable[float]) -> None:
        """Normalise latents per channel by these raw-posterior statistics (one per channel; :mod:`.latent_norm`)."""
        self.config = dataclasses.replace(self.config, latent_mean=tuple(mean), latent_std=tuple(std))  # validates

    def set_output_eq(self, hz: Iterable[float], db: Iterable[float]) -> None:
        """Set the output equaliser (config and decoder): gains ``db`` at frequencies ``hz`` (stft arch only)."""
        config = dataclasses.replace(self.config, output_eq_hz=tuple(hz), output_eq_db=tuple(db))  # validates
        self.backbone.set_output_eq(config.output_eq_hz, config.output_eq_db)
        self.config = config

    def check_init_config(self, other: Any, path: str | Path) -> None:
        """A codec is fine-tuned from a folder of the same recipe; its measured fields (``MEASURED_FIELDS``) may
        differ and come with the weights."""
        raise_if_configs_differ(self.config, other, path, ignored=MEASURED_FIELDS)

    def init_from_pretrained(self, path: str | Path) -> None:
        super().init_from_pretrained(path)
        self.backbone.set_output_eq(self.config.output_eq_hz, self.config.output_eq_db)  # lives in the config

    def save_pretrained(self, path: str | Path) -> Path:
        # the buffer is the value in use (it travels with EMA/checkpoint state); mirror it into config.json
        self.config = dataclasses.replace(self.config, latent_scale=float(self.latent_scale))
        return super().save_pretrained(path)

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
        self.backbone.reorder_latent_channels([ch for ch in range(c) if ch not in channels] + list(channels),
                                              range(c - k, c))
        self.config = dataclasses.replace(self.config, direction_latents=True)

    def repurpose_as_level_latents(self, keep: tuple[int, ...], bands: int) -> None:
        """Turn a trained stft codec without band levels into one with ``bands`` of them, in place (to fine-tune it).

        Of the learned latent channels, those in ``keep`` stay learned, moved to the front in the given order; the
        others become the band-level channels, and the decoder's weights from them are zeroed, so the network's
        output is what it was with those channels at zero (before the band levels are imposed).
        """
        c = self.config.latent_channels
        learned = self.config.learned_channels
        if self.config.arch != "stft" or self.config.level_bands:
            raise ValueError("repurpose_as_level_latents needs an stft codec without band levels")
        if len(set(keep)) != len(keep) or len(keep) + bands != learned or not all(0 <= ch < learned for ch in keep):
            raise ValueError(f"keep {learned - bands} distinct learned channels in [0, {learned}) for {bands} band "
                             f"levels, got {keep}")
        config = dataclasses.replace(self.config, level_bands=bands)  # validates
        order = list(keep) + [ch for ch in range(learned) if ch not in keep] + list(range(learned, c))
        self.backbone.reorder_latent_channels(order, range(len(keep), learned))
        self.config = config
        self._register_level_weights()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def posterior_means(codec: FOACodec, clips: Iterable[torch.Tensor], max_batches: int | None = None
                    ) -> list[torch.Tensor]:
    """The unscaled posterior means ``(B, C, L)`` of ``clips`` (each ``(4, T)`` or ``(B, 4, T)``, at most
    ``max_batches``), in eval mode; the codec's mode is restored afterwards."""
    was_training = codec.training
    codec.eval()
    try:
        return [codec.posterior(codec.check_audio(clip).to(codec.latent_scale.device))[0]
                for clip in itertools.islice(clips, max_batches)]
    finally:
        codec.train(was_training)


def measure_latent_scale(codec: FOACodec, clips: Iterable[torch.Tensor], max_batches: int | None = None) -> float:
    """1 / standard deviation of the unscaled posterior means over ``clips`` (batches ``(B, 4, T)``).

    Set it with ``codec.set_latent_scale(...)`` after training, before export: the diffusion model then sees
    latents of ~unit variance. The mean is taken over every value of every batch (channels pooled).
    """
    return latent_scale_of(posterior_means(codec, clips, max_batches))


def measure_codec_latent_statistics(codec: FOACodec, clips: Iterable[torch.Tensor]
                                    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the raw posterior means over ``clips`` (each ``(4, T)`` or ``(B, 4, T)``); set
    them with ``codec.set_latent_statistics(...)`` at export."""
    return measure_latent_statistics(posterior_means(codec, clips))


def latent_scale_of(means: Iterable[torch.Tensor]) -> float:
    """1 / standard deviation of unscaled posterior means (any shapes; every value pooled), in float64."""
    total, total_sq, count = 0.0, 0.0, 0
    for mean in means:
        total += float(mean.double().sum())
        total_sq += float(mean.double().square().sum())
        count += mean.numel()
    if count == 0:
        raise ValueError("measuring the latent scale needs at least one clip")
    var = total_sq / count - (total / count) ** 2
    return 1.0 / math.sqrt(max(var, 1e-12))
