"""Descriptive conditioner: ELSA's frozen text embedding of the whole spatial caption -> one token.

ELSA is attached at run time (:meth:`DescriptiveConditioner.attach_elsa`) by whoever holds the generation folder's
ELSA, so it is never part of our state_dict, never deep-copied (e.g. into an EMA) and never moved with us. Embeddings
are cached per caption: training reuses a few thousand captions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .types import ConditionError

CACHE_LIMIT = 100_000  # captions kept (512 floats each, ~200 MB at the limit)


class _Attached:
    """A frozen model held outside the parent's submodules: not saved, not moved, shared by deep copies."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __deepcopy__(self, memo: dict[int, Any]) -> _Attached:
        return self


class DescriptiveConditioner(nn.Module):
    """Spatial captions -> one token ``(B, 1, cond_dim)``; a missing or dropped caption is the learned null."""

    def __init__(self, elsa_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.elsa_dim = elsa_dim
        self.proj = nn.Linear(elsa_dim, cond_dim)
        self.null = nn.Parameter(torch.randn(cond_dim) * 0.02)
        self._elsa: _Attached | None = None
        self._cache: dict[str, torch.Tensor] = {}

    def attach_elsa(self, elsa: Any) -> None:
        """Use ``elsa`` (an :class:`~soundstage.elsa_encoder.ELSA`, frozen) to embed spatial captions."""
        width = int(elsa.config.embed_dim)
        if width != self.elsa_dim:
            raise ConditionError(f"this ELSA embeds to {width} dimensions; the DiT was built for elsa_dim="
                                 f"{self.elsa_dim}")
        self._elsa = _Attached(elsa)
        self._cache = {}

    @torch.no_grad()
    def embed(self, captions: list[str]) -> torch.Tensor:
        """ELSA text embeddings ``(B, elsa_dim)`` (unit vectors, CPU), cached per caption."""
        if self._elsa is None:
            raise ConditionError("a descriptive (spatial caption) condition needs ELSA: call "
                                 "conditioners.attach_elsa(elsa) with the generation folder's ELSA")
        fresh = list(dict.fromkeys(c for c in captions if c not in self._cache))
        if fresh:
            if len(self._cache) + len(fresh) > CACHE_LIMIT:
                self._cache.clear()
            elsa = self._elsa.model
            was_training = elsa.training
            elsa.eval()
            self._cache.update(zip(fresh, elsa.embed_text(fresh).float().cpu()))
            elsa.train(was_training)
        return torch.stack([self._cache[c] for c in captions])

    def forward(self, captions: list[str | None], drop: torch.Tensor) -> torch.Tensor:
        """``captions``: B spatial captions (None = not given); ``drop``: ``(B,)`` bool forcing the null.
        Returns tokens ``(B, 1, cond_dim)``."""
        device = self.proj.weight.device
        used = [i for i, caption in enumerate(captions) if caption is not None and not bool(drop[i])]
        embeddings = torch.zeros(len(captions), self.elsa_dim)
        if used:
            embeddings[used] = self.embed([captions[i] for i in used])  # type: ignore[misc]
        given = torch.zeros(len(captions), dtype=torch.bool)
        given[used] = True
        # unit vectors have entries ~1/sqrt(512): rescale to O(1) for the projection
        token = self.proj(embeddings.to(device) * math.sqrt(self.elsa_dim))
        token = torch.where(given.to(device).unsqueeze(-1), token, self.null.to(token.dtype))
        return token.unsqueeze(1)
