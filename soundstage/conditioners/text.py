"""Parametric text conditioner: a frozen text model's token states -> cross-attention tokens.

The text model (the bundled MiniLM, or a local transformers folder by path) is referenced by name and loaded on
first use, never stored in our weights; only the projection and the learned null are trained. Prompts longer than
``max_tokens`` are truncated with a logged warning naming the limit.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from soundstage.common.text_encoder import FrozenTextEncoder

from .types import ConditionError

logger = logging.getLogger(__name__)


class TextConditioner(nn.Module):
    """Semantic captions -> tokens ``(B, N, cond_dim)`` + mask ``(B, N)``; a missing or dropped caption is one
    learned null token (``N >= 1``)."""

    def __init__(self, text_model: str, text_dim: int, max_tokens: int, cond_dim: int) -> None:
        super().__init__()
        self.text_model, self.text_dim, self.max_tokens = text_model, text_dim, max_tokens
        self.norm = nn.LayerNorm(text_dim, elementwise_affine=False)  # MiniLM states have outliers of ~6 std
        self.proj = nn.Linear(text_dim, cond_dim)
        self.null = nn.Parameter(torch.randn(cond_dim) * 0.02)
        self._encoder: FrozenTextEncoder | None = None  # plain attribute: never in the state_dict
        self._lengths: dict[str, int] = {}  # tokens per text, for the truncation warning

    @property
    def encoder(self) -> FrozenTextEncoder:
        """The frozen text model, loaded on first use (shared per process)."""
        if self._encoder is None:
            encoder = FrozenTextEncoder(
                self.text_model, max_length=self.max_tokens,
                missing_hint="set 'conditioners.text_model' in the DiT config.json to a local transformers folder",
            )
            if encoder.dim != self.text_dim:
                raise ConditionError(
                    f"text model {self.text_model!r} has width {encoder.dim}, but this DiT was built for "
                    f"text_dim={self.text_dim}"
                )
            self._encoder = encoder
        return self._encoder

    def _warn_if_truncated(self, texts: list[str]) -> None:
        fresh = [t for t in texts if t not in self._lengths]
        if fresh:
            ids = self.encoder.tokenizer(fresh, add_special_tokens=True, truncation=False)["input_ids"]
            self._lengths.update(zip(fresh, map(len, ids)))
        for text in dict.fromkeys(texts):
            if self._lengths[text] > self.max_tokens:
                logger.warning("prompt of %d tokens truncated to the text conditioner's limit of %d tokens: %.60r...",
                               self._lengths[text], self.max_tokens, text)

    def forward(self, texts: list[str | None], drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``texts``: B captions (None = not given); ``drop``: ``(B,)`` bool forcing the null.
        Returns tokens ``(B, N, cond_dim)`` and mask ``(B, N)`` bool."""
        device = self.proj.weight.device
        used = [i for i, text in enumerate(texts) if text is not None and not bool(drop[i])]
        states = torch.zeros(len(texts), 1, self.text_dim)
        mask = torch.zeros(len(texts), 1, dtype=torch.bool)
        if used:
            chosen = [texts[i] for i in used]
            self._warn_if_truncated(chosen)  # type: ignore[arg-type]
            with warnings.catch_warnings():  # the encoder's own warning would repeat ours
                warnings.filterwarnings("ignore", message=".*were truncated to")
                encoded, encoded_mask = self.encoder.encode_tokens(chosen)  # type: ignore[arg-type]
            states = torch.zeros(len(texts), encoded.shape[1], self.text_dim)
            mask = torch.zeros(len(texts), encoded.shape[1], dtype=torch.bool)
            states[used], mask[used] = encoded, encoded_mask
        states, mask = states.to(device), mask.to(device)
        tokens = self.proj(self.norm(states)) * mask.unsqueeze(-1)
        is_null = ~mask[:, 0]
        first = torch.where(is_null.unsqueeze(-1), self.null.to(tokens.dtype), tokens[:, 0])
        tokens = torch.cat([first.unsqueeze(1), tokens[:, 1:]], dim=1)
        return tokens, mask | torch.nn.functional.pad(is_null.unsqueeze(1), (0, mask.shape[1] - 1))
