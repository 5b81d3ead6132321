"""ELSA's training objective (eq. 5): symmetric InfoNCE with a learnable temperature + spatial regression terms."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from soundstage.foa import direction_vector

from .config import ELSAConfig
from .model import SCALAR_TARGETS, normalize_target


def contrastive_loss(
    audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between unit embeddings ``(B, D)``.

    ``groups`` ``(B,)`` marks items that share a caption (e.g. two renderings of one source with its non-spatial
    caption): they are all positives of each other rather than false negatives (multi-positive InfoNCE).
    """
    logits = logit_scale * audio @ text.T  # (B, B): audio i vs text j
    if groups is None:
        targets = torch.arange(len(audio), device=audio.device)
        return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    positives = groups[:, None] == groups[None, :]
    a2t = -(torch.logsumexp(logits.masked_fill(~positives, float("-inf")), 1) - torch.logsumexp(logits, 1))
    t2a = -(torch.logsumexp(logits.T.masked_fill(~positives, float("-inf")), 1) - torch.logsumexp(logits.T, 1))
    return 0.5 * (a2t.mean() + t2a.mean())


def spatial_losses(heads: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Cosine loss on direction and MSE on normalised distance, floor area and T30, over spatial items only.

    ``batch`` holds ``is_spatial`` ``(B,)`` bool and ``azimuth_deg``, ``elevation_deg``, ``distance_m``,
    ``floor_area_m2``, ``t30_s`` ``(B,)`` (NaN for non-spatial items). A batch without spatial items gives zeros
    that still depend on the heads, so every parameter gets a (zero) gradient.
    """
    mask = batch["is_spatial"].bool()
    zero = heads["direction"].sum() * 0.0
    if not bool(mask.any()):
        return {"direction": zero, **{name: zero for name in SCALAR_TARGETS}}
    target_dir = direction_vector(batch["azimuth_deg"][mask], batch["elevation_deg"][mask]).to(heads["direction"])
    out = {"direction": (1.0 - (heads["direction"][mask] * target_dir).sum(-1)).mean()}
    for name in SCALAR_TARGETS:
        target = normalize_target(name, batch[name][mask].to(heads[name]))
        out[name] = F.mse_loss(heads[name][mask], target)
    return out


def elsa_loss(
    output: dict[str, Any], batch: dict[str, Any], config: ELSAConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and logs from :meth:`ELSA.forward` output and a batch (``caption_group`` optional)."""
    contrastive = contrastive_loss(output["audio"], output["text"], output["logit_scale"], batch.get("caption_group"))
    spatial = spatial_losses(output["heads"], batch)
    weights = {
        "direction": config.direction_loss_weight,
        "distance_m": config.distance_loss_weight,
        "floor_area_m2": config.floor_area_loss_weight,
        "t30_s": config.t30_loss_weight,
    }
    total = contrastive + sum(weights[k] * v for k, v in spatial.items())
    logs = {"contrastive": contrastive.detach().item(), "temperature": 1.0 / output["logit_scale"].detach().item()}
    logs.update({f"loss_{k}": v.detach().item() for k, v in spatial.items()})
    return total, logs
