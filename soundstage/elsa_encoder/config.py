"""ELSA configuration and presets.

``tiny`` runs the tests in seconds, ``small`` is the bundled default (trainable on CPU), ``paper`` is a GPU-sized
model at 48 kHz. Each field's comment gives its unit or the reason for its default; docs/elsa.md keeps the record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from soundstage.common.text_encoder import BUNDLED_TEXT_MODEL

# Fields that only weight training losses: a folder may initialise a fine-tuning run that sets them differently.
TRAINING_ONLY_FIELDS = ("direction_loss_weight", "distance_loss_weight", "floor_area_loss_weight", "t30_loss_weight",
                        "zero_shot_loss_weight", "zero_shot_attributes")


@dataclass
class ELSAConfig:
    # Audio front end (computed in torch; no torchaudio).
    sample_rate: int = 24000  # Hz; other rates are resampled on the way in
    n_fft: int = 2048  # 85 ms window at 24 kHz, half-overlapping frames
    hop_length: int = 960  # 40 ms at 24 kHz: a few frames per 100 ms still show onsets and decays (T30)
    n_mels: int = 64  # mel bands of the W spectrogram; intensity vectors are pooled into the same bands
    f_min: float = 20.0
    f_max: float | None = None  # None = Nyquist
    # Semantic branch: a CNN on the log-mel spectrogram of the omni (W) channel; one block per entry, 2x2 pooling
    # between blocks.
    semantic_channels: tuple[int, ...] = (32, 64, 128, 256)
    # Spatial branch: a CNN over active + reactive intensity (6 channels) with frequency/time coordinate channels.
    spatial_channels: tuple[int, ...] = (16, 32, 64)
    # Also give the spatial branch the W log-mel as a 7th channel: intensity in near-silent bins is noise, and the
    # branch needs the level to tell which bins to trust.
    spatial_energy_channel: bool = True
    # Energy-weighted mean intensity in this many frequency groups (6 numbers each) is appended to the spatial
    # branch output: the broadband DOA and diffuseness of docs/conventions.md section 1, cheap and exact.
    intensity_summary_groups: int = 8
    # Shared embedding space.
    embed_dim: int = 512
    projection_hidden: int = 512  # width of the 2-layer projection MLPs (audio and text)
    dropout: float = 0.1
    # Text tower: a frozen transformers model referenced by name or local path, never stored in our weights.
    text_encoder: str = BUNDLED_TEXT_MODEL
    text_dim: int = 384  # hidden size of text_encoder (checked when it loads)
    text_max_length: int = 128  # tokens; longer captions are truncated with a warning
    # >0 trains a copy of the text model's top N layers (then saved with our weights); 0 = fully frozen, and text
    # features are cached so training costs nothing on the text side.
    text_finetune_layers: int = 0
    # Spatial regression heads on the audio embedding.
    head_hidden: int = 256
    # Contrastive temperature (learnable, ELSA eq. 4) and loss weights of the spatial terms (ELSA eq. 5).
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    direction_loss_weight: float = 1.0
    distance_loss_weight: float = 1.0
    floor_area_loss_weight: float = 1.0
    t30_loss_weight: float = 1.0
    # Zero-shot probe loss: cross-entropy of each spatial view's audio embedding against the text prototypes of its
    # classes (probes.py; the prototypes come from the text branch, so a frozen text side gives fixed targets). It
    # teaches the audio branch to place e.g. near and far sounds next to the existing "near" / "far" texts, which
    # the in-batch contrastive term rewards only weakly (a batch rarely holds two captions that differ only in the
    # distance word). 0 = off: folders written before this field load unchanged. Training-only, like the weights
    # above (see ELSA.init_from_pretrained).
    zero_shot_loss_weight: float = 0.0
    zero_shot_attributes: tuple[str, ...] = ("direction", "distance", "elevation", "room_size", "reverberation")

    def __post_init__(self) -> None:
        from .probes import ATTRIBUTE_CLASSES

        self.semantic_channels = tuple(int(c) for c in self.semantic_channels)
        self.spatial_channels = tuple(int(c) for c in self.spatial_channels)
        self.zero_shot_attributes = tuple(str(a) for a in self.zero_shot_attributes)
        nyquist = self.sample_rate / 2
        checks = [
            (self.sample_rate > 0, f"sample_rate must be positive, got {self.sample_rate}"),
            (0 < self.hop_length <= self.n_fft, f"need 0 < hop_length <= n_fft, got {self.hop_length}, {self.n_fft}"),
            (0 < self.n_mels <= self.n_fft // 2 + 1, f"n_mels must be in [1, n_fft // 2 + 1], got {self.n_mels}"),
            (self.f_max is None or self.f_min < self.f_max <= nyquist,
             f"need f_min < f_max <= sample_rate / 2, got {self.f_min}, {self.f_max}"),
            (0 <= self.f_min < nyquist, f"f_min must be in [0, sample_rate / 2), got {self.f_min}"),
            (len(self.semantic_channels) > 0 and min(self.semantic_channels) > 0, "semantic_channels must be positive"),
            (len(self.spatial_channels) > 0 and min(self.spatial_channels) > 0, "spatial_channels must be positive"),
            (1 <= self.intensity_summary_groups <= self.n_mels, "intensity_summary_groups must be in [1, n_mels]"),
            (self.embed_dim > 0 and self.projection_hidden > 0 and self.head_hidden > 0, "widths must be positive"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.text_dim > 0 and self.text_max_length > 0, "text_dim and text_max_length must be positive"),
            (self.text_finetune_layers >= 0, f"text_finetune_layers must be >= 0, got {self.text_finetune_layers}"),
            (0.0 < self.init_temperature < 1.0, f"init_temperature must be in (0, 1), got {self.init_temperature}"),
            (self.max_logit_scale > 1.0, "max_logit_scale must be > 1"),
            (self.zero_shot_loss_weight >= 0.0, f"zero_shot_loss_weight must be >= 0, got {self.zero_shot_loss_weight}"),
            (set(self.zero_shot_attributes) <= set(ATTRIBUTE_CLASSES),
             f"zero_shot_attributes must be among {tuple(ATTRIBUTE_CLASSES)}, got {self.zero_shot_attributes}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ELSAConfig: {message}")

    @property
    def min_frames(self) -> int:
        """Fewest STFT frames the CNNs accept (one per pooling step); shorter audio is zero-padded."""
        return 2 ** (max(len(self.semantic_channels), len(self.spatial_channels)) - 1)


ELSA_PRESETS: dict[str, ELSAConfig] = {
    "tiny": ELSAConfig(
        sample_rate=16000, n_fft=256, hop_length=128, n_mels=16, semantic_channels=(8, 16), spatial_channels=(8, 16),
        intensity_summary_groups=4, projection_hidden=64, head_hidden=32, dropout=0.0,
    ),
    "small": ELSAConfig(),
    "paper": ELSAConfig(
        sample_rate=48000, n_fft=4096, hop_length=1920, n_mels=128, semantic_channels=(64, 128, 256, 512, 512),
        spatial_channels=(32, 64, 128, 256), projection_hidden=1024, head_hidden=512, text_finetune_layers=2,
    ),
}


def elsa_preset(name: str, **overrides: Any) -> ELSAConfig:
    """A copy of a preset config with fields replaced; unknown preset names list the valid ones."""
    if name not in ELSA_PRESETS:
        raise KeyError(f"unknown ELSA preset {name!r}; choose one of {sorted(ELSA_PRESETS)}")
    return replace(ELSA_PRESETS[name], **overrides)
