"""All conditioners of one DiT: :class:`ConditionersConfig` (nested in the DiT config) and :class:`Conditioners`.

``forward(batch, drop)`` -> :class:`Conditioning`: tokens = [text tokens, descriptive, 5 numbers, timing]; the
global vector = the timing embedding + a projection of the descriptive and number tokens (adaLN is the strongest
path into a small DiT, and direction is a property of the whole clip). One DiT serves both modes: training drops
whole modes (:meth:`Conditioners.training_drop`) so that descriptive-only and parametric-only requests are in
distribution, and content-free examples train the unconditional branch of classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .descriptive import DescriptiveConditioner
from .numbers import NumberConditioner, TimingConditioner
from .text import TextConditioner
from .types import NUMBER_KEYS, ConditionBatch, Conditioning

DROP_KEYS = ("text", "descriptive", *NUMBER_KEYS, "timing")  # keys of a ``drop`` dict

# what training drops (each conditioner's dropout and the mode split), not what the weights are: a fine-tune may
# change them (SpatialDiT.init_from_pretrained keeps its own)
TRAINING_ONLY_FIELDS = ("text_dropout", "descriptive_dropout", "number_dropout", "timing_dropout", "parametric_only",
                        "descriptive_only", "content_null")


@dataclass
class ConditionersConfig:
    """Conditioner widths and training dropout; probabilities are per example."""

    cond_dim: int = 256  # width of the tokens and the global vector
    text_model: str = "minilm"  # bundled name or local transformers folder; frozen, referenced, never saved
    text_dim: int = 384  # hidden size of text_model (checked when it loads)
    text_max_tokens: int = 64  # longer prompts are truncated with a warning
    elsa_dim: int = 512  # ELSA embedding width (checked by attach_elsa)
    fourier_features: int = 4  # frequencies per number (2^0 .. 2^3 rad per unit): smooth, neighbours stay close
    text_dropout: float = 0.1
    descriptive_dropout: float = 0.1
    number_dropout: float = 0.2  # each number key independently: any subset can be given at sampling
    timing_dropout: float = 0.05
    parametric_only: float = 0.3  # drop the spatial caption (a parametric request)
    descriptive_only: float = 0.3  # drop the semantic caption and every number (a descriptive request)
    content_null: float = 0.1  # drop every content condition (CFG's unconditional branch; timing kept)

    def __post_init__(self) -> None:
        for name in ("cond_dim", "text_dim", "text_max_tokens", "elsa_dim", "fourier_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"ConditionersConfig.{name} must be >= 1, got {getattr(self, name)}")
        probabilities = ("text_dropout", "descriptive_dropout", "number_dropout", "timing_dropout",
                         "parametric_only", "descriptive_only", "content_null")
        for name in probabilities:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ConditionersConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.parametric_only + self.descriptive_only + self.content_null > 1.0:
            raise ValueError("parametric_only + descriptive_only + content_null must be <= 1 (they exclude each other)")


class Conditioners(nn.Module):
    """:class:`ConditionBatch` -> :class:`Conditioning` (tokens ``(B, N, cond_dim)``, N = text tokens + 7).

    Args:
        config: widths and dropout.
        max_seconds: the DiT's longest clip; timing is encoded as a fraction of it.
    """

    def __init__(self, config: ConditionersConfig, max_seconds: float) -> None:
        super().__init__()
        self.config = config
        dim = config.cond_dim
        self.text = TextConditioner(config.text_model, config.text_dim, config.text_max_tokens, dim)
        self.descriptive = DescriptiveConditioner(config.elsa_dim, dim)
        self.numbers = NumberConditioner(dim, config.fourier_features)
        self.timing = TimingConditioner(dim, config.fourier_features, max_seconds)
        self.to_global = nn.Linear((1 + len(NUMBER_KEYS)) * dim, dim)

    def attach_elsa(self, elsa: nn.Module) -> None:
        """Embed spatial captions with this (frozen) ELSA; see :class:`DescriptiveConditioner`."""
        self.descriptive.attach_elsa(elsa)

    def training_drop(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Random ``drop`` masks (key of :data:`DROP_KEYS` -> ``(B,)`` bool, CPU) for one training batch: a mode
        (both / parametric only / descriptive only / content-free) per example, then each conditioner's own
        dropout."""
        c = self.config

        def draw() -> torch.Tensor:
            return torch.rand(batch_size, generator=generator)

        mode = draw()
        null = mode < c.content_null
        parametric = (mode >= c.content_null) & (mode < c.content_null + c.parametric_only)
        descriptive = (mode >= c.content_null + c.parametric_only) & (
            mode < c.content_null + c.parametric_only + c.descriptive_only)
        drop = {"text": (draw() < c.text_dropout) | null | descriptive,
                "descriptive": (draw() < c.descriptive_dropout) | null | parametric}
        for key in NUMBER_KEYS:
            drop[key] = (draw() < c.number_dropout) | null | descriptive
        drop["timing"] = draw() < c.timing_dropout
        return drop

    def forward(self, batch: ConditionBatch, drop: dict[str, torch.Tensor] | None = None) -> Conditioning:
        """``drop``: optional masks (any keys of :data:`DROP_KEYS`, each ``(B,)`` bool; True forces the null)."""
        size = len(batch)
        unknown = set(drop or {}) - set(DROP_KEYS)
        if unknown:
            raise KeyError(f"unknown drop keys {sorted(unknown)}; valid: {DROP_KEYS}")
        masks = {key: torch.zeros(size, dtype=torch.bool) for key in DROP_KEYS}
        masks.update({k: v.bool().cpu() for k, v in (drop or {}).items()})
        text, text_mask = self.text(batch.semantic, masks["text"])
        descriptive = self.descriptive(batch.spatial_caption, masks["descriptive"])
        numbers = self.numbers(batch.numbers, masks)
        timing = self.timing(batch.seconds, masks["timing"])
        spatial = torch.cat([descriptive, numbers], dim=1)  # (B, 6, D)
        tokens = torch.cat([text, spatial, timing.unsqueeze(1)], dim=1)
        mask = torch.cat([text_mask, torch.ones(size, spatial.shape[1] + 1, dtype=torch.bool, device=text.device)], 1)
        return Conditioning(tokens, mask, timing + self.to_global(spatial.flatten(1)))
