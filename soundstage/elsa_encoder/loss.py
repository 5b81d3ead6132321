"""ELSA's training objective (eq. 5): symmetric InfoNCE with a learnable temperature + spatial regression terms, and
an optional zero-shot probe term (cross-entropy against the text prototypes of the spatial classes)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from soundstage.foa import direction_vector

from .config import ELSAConfig
from .model import SCALAR_TARGETS, normalize_target
from .probes import attribute_label


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


def zero_shot_labels(batch: dict[str, Any], attributes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Class index ``(B,)`` (long, -1 = no class) of every item of ``batch`` for each attribute
    (:func:`~soundstage.elsa_encoder.probes.attribute_label` on the batch's label tensors; NaN labels give -1)."""
    keys = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")
    rows = [dict(zip(keys, values)) for values in zip(*(batch[k].tolist() for k in keys))]
    return {a: torch.tensor([attribute_label(a, r) for r in rows], dtype=torch.long) for a in attributes}


def zero_shot_loss(
    audio: torch.Tensor, logit_scale: torch.Tensor, prototypes: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per attribute, the cross-entropy of zero-shot classification: unit audio embeddings ``(B, D)`` against that
    attribute's unit text prototypes ``(C, D)``, over the items whose label ``(B,)`` is a class (>= 0). An attribute
    without labelled items gives a zero that still depends on ``audio``."""
    out = {}
    for attribute, protos in prototypes.items():
        target = labels[attribute].to(audio.device)
        keep = target >= 0
        if not bool(keep.any()):
            out[attribute] = audio.sum() * 0.0
            continue
        logits = logit_scale * audio[keep] @ protos.to(audio).T
        out[attribute] = F.cross_entropy(logits, target[keep])
    return out


def elsa_loss(
    output: dict[str, Any], batch: dict[str, Any], config: ELSAConfig,
    prototypes: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and logs from :meth:`ELSA.forward` output and a batch (``caption_group`` optional).

    ``prototypes`` (attribute -> ``(C, D)`` unit text prototypes, e.g. of :func:`~.probes.class_prototypes`) adds
    the zero-shot term of :func:`zero_shot_loss`, summed over attributes and weighted by
    ``config.zero_shot_loss_weight``; without them, or with a zero weight, there is no such term.
    """
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
    if prototypes and config.zero_shot_loss_weight > 0:
        labels = zero_shot_labels(batch, tuple(prototypes))
        terms = zero_shot_loss(output["audio"], output["logit_scale"], prototypes, labels)
        total = total + config.zero_shot_loss_weight * sum(terms.values())
        logs.update({f"loss_zero_shot_{k}": v.detach().item() for k, v in terms.items()})
    return total, logs
