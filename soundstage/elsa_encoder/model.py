"""ELSA: spatially-aware audio and text embeddings in one space (Devnani et al., NeurIPS 2024).

Audio tower: a semantic CNN on the log-mel spectrogram of W and a spatial CNN (CoordConv) on active + reactive
intensity vectors; their pooled outputs are concatenated and projected to the embedding by a 2-layer MLP. Text
tower: a frozen transformers encoder (bundled MiniLM by default, referenced by name, never saved with our weights)
followed by a 2-layer MLP. Regression heads read direction, distance, floor area and T30 off the audio embedding.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundstage.common.audio import resample
from soundstage.common.compat import grad_only_for_input
from soundstage.common.pretrained import PretrainedMixin, raise_if_configs_differ
from soundstage.common.text_encoder import FrozenTextEncoder, check_texts, masked_mean
from soundstage.data.manifest import ATTRIBUTE_RANGES
from soundstage.foa import FOAInputError, check_foa, vector_to_angles

from .config import TRAINING_ONLY_FIELDS, ELSAConfig
from .features import FOAFeatures, intensity_summary, min_samples, scale_logmel


class ELSAInputError(FOAInputError):
    """Audio the encoder cannot take: what :func:`~soundstage.foa.check_foa` refuses, or an invalid sample rate."""


def _whole_hertz(sample_rate: Any) -> int:
    """``sample_rate`` as a positive int (a whole-valued float is accepted); ELSAInputError otherwise."""
    if isinstance(sample_rate, (float, np.floating)) and float(sample_rate).is_integer():
        sample_rate = int(sample_rate)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ELSAInputError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


# Regression targets are mapped to about [0, 1]: distance linearly, floor area and T30 on a log scale (both span a
# factor of ~20, and relative errors matter more than absolute ones).
_LOG_TARGETS = {"floor_area_m2", "t30_s"}
SCALAR_TARGETS = ("distance_m", "floor_area_m2", "t30_s")


def normalize_target(name: str, value: torch.Tensor) -> torch.Tensor:
    low, high = ATTRIBUTE_RANGES[name]
    if name in _LOG_TARGETS:
        return (torch.log(value.clamp_min(1e-6)) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def denormalize_target(name: str, value: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_target`, clamped to the attribute's range (docs/conventions.md section 2)."""
    low, high = ATTRIBUTE_RANGES[name]
    value = value.clamp(0.0, 1.0)
    if name in _LOG_TARGETS:
        return torch.exp(math.log(low) + value * (math.log(high) - math.log(low)))
    return low + value * (high - low)


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and GELU (GroupNorm, not BatchNorm: EMA copies and batch 1 behave)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(out_channels), out_channels),
            nn.GELU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(out_channels), out_channels),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNNEncoder(nn.Module):
    """Conv blocks with 2x2 average pooling between them; output ``(B, 2C)``: time-mean and time-max of the
    frequency-mean of the last block (PANNs-style pooling)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        widths = (in_channels,) + tuple(channels)
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in itertools.pairwise(widths))
        self.out_dim = 2 * channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, M, N)
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            x = block(x)
        x = x.mean(dim=2)  # (B, C, N')
        return torch.cat((x.mean(dim=-1), x.amax(dim=-1)), dim=-1)


def coordinate_channels(batch: int, bands: int, frames: int, like: torch.Tensor) -> torch.Tensor:
    """CoordConv channels ``(B, 2, M, N)``: frequency and time position, each in [-1, 1]."""
    freq = torch.linspace(-1.0, 1.0, bands, device=like.device, dtype=like.dtype)
    time = torch.linspace(-1.0, 1.0, frames, device=like.device, dtype=like.dtype)
    grid = torch.stack(torch.meshgrid(freq, time, indexing="ij"))
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


class ELSA(nn.Module, PretrainedMixin):
    """Spatial audio-text contrastive encoder.

    Public API (README, "Python"): :meth:`embed_audio`, :meth:`embed_text`, :meth:`predict_spatial`,
    ``save_pretrained`` / ``from_pretrained``. Audio at another sample rate than ``config.sample_rate`` is resampled
    (polyphase, ``soundstage.common.audio.resample``). Gradients flow unless the caller disables them.
    """

    config_class = ELSAConfig
    format_name = "soundstage.elsa"
    pretrained_subfolder = "elsa"

    def __init__(self, config: ELSAConfig) -> None:
        super().__init__()
        self.config = config
        self.features = FOAFeatures(config)
        self.semantic = CNNEncoder(1, config.semantic_channels)
        spatial_in = 6 + int(config.spatial_energy_channel) + 2
        self.spatial = CNNEncoder(spatial_in, config.spatial_channels)
        summary_dim = 6 * (config.intensity_summary_groups + 1)
        audio_dim = self.semantic.out_dim + self.spatial.out_dim + summary_dim
        self.audio_projection = mlp(audio_dim, config.projection_hidden, config.embed_dim, config.dropout)
        self.text_projection = mlp(config.text_dim, config.projection_hidden, config.embed_dim, config.dropout)
        self.heads = nn.ModuleDict(
            {
                "direction": mlp(config.embed_dim, config.head_hidden, 3),
                **{name: mlp(config.embed_dim, config.head_hidden, 1) for name in SCALAR_TARGETS},
            }
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        self._text_encoder: FrozenTextEncoder | None = None  # plain attribute: not a submodule, never saved
        self.text_top_layers: nn.ModuleList | None = None
        if config.text_finetune_layers > 0:
            self.text_top_layers = self._copy_top_text_layers(config.text_finetune_layers)

    # ------------------------------------------------------------------ fine-tuning
    def check_init_config(self, other: Any, path: Any) -> None:
        """A folder may initialise this model when their configs agree outside the loss weights."""
        raise_if_configs_differ(self.config, other, path, ignored=TRAINING_ONLY_FIELDS)

    def init_from_pretrained(self, path: Any) -> None:
        """Copy a saved ELSA's weights and config into this model, keeping this model's loss weights
        (:data:`~soundstage.elsa_encoder.config.TRAINING_ONLY_FIELDS`), so a fine-tuning run may weight its losses
        differently from the run that made the folder."""
        own = {name: getattr(self.config, name) for name in TRAINING_ONLY_FIELDS}
        super().init_from_pretrained(path)
        self.config = dataclasses.replace(self.config, **own)

    # ------------------------------------------------------------------ text tower
    @property
    def text_encoder(self) -> FrozenTextEncoder:
        """The frozen text model named by ``config.text_encoder``, loaded on first use."""
        if self._text_encoder is None:
            encoder = FrozenTextEncoder(
                self.config.text_encoder,
                max_length=self.config.text_max_length,
                missing_hint=(
                    "set 'text_encoder' in the ELSA config.json (ELSAConfig.text_encoder) to the folder of a local "
                    "transformers text model, or call ELSA.use_text_encoder(path)"
                ),
            )
            if encoder.dim != self.config.text_dim:
                raise ValueError(
                    f"text model {encoder.name!r} has {encoder.dim}-d features but this ELSA expects "
                    f"text_dim={self.config.text_dim}"
                )
            self._text_encoder = encoder
        return self._text_encoder

    def use_text_encoder(self, path_or_name: str) -> None:
        """Point the text tower at another copy of the same text model (e.g. a local folder on another machine)."""
        self.config.text_encoder = str(path_or_name)
        self._text_encoder = None
        _ = self.text_encoder

    def _copy_top_text_layers(self, count: int) -> nn.ModuleList:
        layers = getattr(getattr(self.text_encoder.model, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise ValueError(
                f"text_finetune_layers > 0 needs a BERT-style text model (model.encoder.layer); "
                f"{self.config.text_encoder!r} is a {type(self.text_encoder.model).__name__}"
            )
        if count > len(layers):
            raise ValueError(f"text_finetune_layers={count} but the text model has {len(layers)} layers")
        top = nn.ModuleList(copy.deepcopy(layer) for layer in layers[len(layers) - count :])
        top.requires_grad_(True)
        return top

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Pooled text-model features ``(B, text_dim)`` (cached when the text model is fully frozen)."""
        texts = check_texts(texts)
        device = self.logit_scale.device
        if self.text_top_layers is None:
            return self.text_encoder.encode(texts).to(device)
        from transformers.masking_utils import create_bidirectional_mask

        encoder = self.text_encoder
        states, mask = encoder.encode_tokens(texts, layer=encoder.num_layers - len(self.text_top_layers))
        states, mask = states.to(device), mask.to(device)
        attention = create_bidirectional_mask(config=encoder.model.config, inputs_embeds=states, attention_mask=mask)
        for layer in self.text_top_layers:
            states = layer(states, attention)
        pooled = masked_mean(states, mask)
        return F.normalize(pooled, dim=-1) if encoder.normalize else pooled

    def embed_text_features(self, features: torch.Tensor) -> torch.Tensor:
        """Unit text embeddings ``(B, embed_dim)`` from text-model features ``(B, text_dim)``."""
        # Sentence features are unit vectors with tiny entries; rescale to O(1) so the MLP starts in a useful range.
        return F.normalize(self.text_projection(features * math.sqrt(features.shape[-1])), dim=-1)

    @grad_only_for_input
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit text embeddings ``(B, embed_dim)``.

        Raises:
            TypeError / TextEncoderError: not a list of strings, or an empty text. Texts longer than
            ``config.text_max_length`` tokens are truncated with a warning.
        """
        return self.embed_text_features(self.text_features(texts))

    # ------------------------------------------------------------------ audio tower
    def prepare_audio(self, foa: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Check FOA audio ``(4, T)`` or ``(B, 4, T)`` and return ``(B, 4, T')`` float32 at ``config.sample_rate`` on
        the model's device (zero-padded to :func:`~soundstage.elsa_encoder.features.min_samples` when shorter).

        Raises:
            ELSAInputError: mono/stereo or other non-FOA shapes, empty or non-finite audio, a bad sample rate.
        """
        try:
            foa = check_foa(foa)
        except FOAInputError as exc:
            raise ELSAInputError(str(exc)) from None
        sample_rate = _whole_hertz(sample_rate)
        if sample_rate != self.config.sample_rate:
            resampled = resample(foa.detach().cpu().numpy(), sample_rate, self.config.sample_rate)
            foa = torch.from_numpy(resampled)
        shortest = min_samples(self.config)
        if foa.shape[-1] < shortest:
            foa = F.pad(foa, (0, shortest - foa.shape[-1]))
        return foa.to(self.logit_scale.device)

    def audio_features(self, foa: torch.Tensor | np.ndarray, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(``logmel`` ``(B, M, N)``, ``intensity`` ``(B, 6, M, N)``) of FOA audio, after :meth:`prepare_audio`."""
        return self.features(self.prepare_audio(foa, sample_rate))

    def embed_audio_features(self, logmel: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        """Unit audio embeddings ``(B, embed_dim)`` from features (see :class:`FOAFeatures`)."""
        scaled = scale_logmel(logmel)
        semantic = self.semantic(scaled.unsqueeze(1))
        channels = [intensity] + ([scaled.unsqueeze(1)] if self.config.spatial_energy_channel else [])
        b, _, m, n = intensity.shape
        channels.append(coordinate_channels(b, m, n, intensity))
        spatial = self.spatial(torch.cat(channels, dim=1))
        summary = intensity_summary(logmel, intensity, self.config.intensity_summary_groups)
        return F.normalize(self.audio_projection(torch.cat((semantic, spatial, summary), dim=-1)), dim=-1)

    @grad_only_for_input
    def embed_audio(self, foa: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Unit audio embeddings ``(B, embed_dim)`` of AmbiX audio ``(4, T)`` or ``(B, 4, T)``."""
        return self.embed_audio_features(*self.audio_features(foa, sample_rate))

    # ------------------------------------------------------------------ spatial heads
    def head_outputs(self, audio_embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs: ``direction`` ``(B, 3)`` unit (x, y, z) vectors, and the normalised scalar targets
        ``distance_m``, ``floor_area_m2``, ``t30_s`` ``(B,)`` (see :func:`normalize_target`)."""
        x = audio_embedding * math.sqrt(audio_embedding.shape[-1])  # unit vectors have tiny entries; rescale to O(1)
        out = {"direction": F.normalize(self.heads["direction"](x), dim=-1)}
        out.update({name: self.heads[name](x).squeeze(-1) for name in SCALAR_TARGETS})
        return out

    def spatial_from_embedding(self, audio_embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physical predictions (degrees, metres, m2, seconds), each ``(B,)``, from audio embeddings."""
        raw = self.head_outputs(audio_embedding)
        azimuth, elevation = vector_to_angles(raw["direction"])
        out = {"azimuth_deg": azimuth, "elevation_deg": elevation}
        out.update({name: denormalize_target(name, raw[name]) for name in SCALAR_TARGETS})
        return out

    @grad_only_for_input
    def predict_spatial(self, foa: torch.Tensor | np.ndarray, sample_rate: int) -> dict[str, torch.Tensor]:
        """``azimuth_deg``, ``elevation_deg``, ``distance_m``, ``floor_area_m2``, ``t30_s``: ``(B,)`` tensors each."""
        return self.spatial_from_embedding(self.embed_audio(foa, sample_rate))

    # ------------------------------------------------------------------ training
    def forward(
        self, logmel: torch.Tensor, intensity: torch.Tensor, text: torch.Tensor | Sequence[str]
    ) -> dict[str, Any]:
        """Training forward: features and texts (strings, or cached text-model features ``(B, text_dim)``) ->
        ``audio`` and ``text`` unit embeddings, head outputs (``heads``) and the clamped ``logit_scale``."""
        audio = self.embed_audio_features(logmel, intensity)
        text_features = text if isinstance(text, torch.Tensor) else self.text_features(text)
        return {
            "audio": audio,
            "text": self.embed_text_features(text_features),
            "heads": self.head_outputs(audio),
            "logit_scale": self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp(),
        }
