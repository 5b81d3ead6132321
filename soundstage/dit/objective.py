"""Rectified flow (flow matching with straight paths): the DiT's training objective.

x_t = (1 - t) x0 + t noise, target velocity v = noise - x0, t ~ logit-normal(0, 1) (SD3: more steps where the
velocity is hardest to predict); loss = MSE over valid frames. ``x0`` is a latent sample already multiplied by the
codec's latent scale (unit variance).
"""

from __future__ import annotations

import torch

from soundstage.conditioners import Conditioning

from .model import SpatialDiT


def flow_matching_loss(dit: SpatialDiT, x0: torch.Tensor, cond: Conditioning, frame_mask: torch.Tensor | None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked rectified-flow loss of one batch.

    Args:
        dit: the velocity model (may be wrapped, e.g. by accelerate: only called).
        x0: ``(B, C, L)`` scaled clean latents.
        cond: the batch's conditioning (dropout already applied).
        frame_mask: ``(B, L)`` bool, True = a real frame (None: all real).
        generator: draws t and the noise (on ``x0``'s device) for reproducible steps.

    Returns:
        The scalar loss and ``{"loss", "loss_t_low", "loss_t_high"}`` (MSE where t < 0.5 / t >= 0.5, NaN if none).
    """
    b = x0.shape[0]
    t = torch.sigmoid(torch.randn(b, generator=generator, device=x0.device, dtype=x0.dtype))
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    tb = t.view(b, 1, 1)
    velocity = dit(((1 - tb) * x0 + tb * noise), t, cond, frame_mask)
    error = (velocity.float() - (noise - x0).float()).pow(2).mean(dim=1)  # (B, L)
    weights = torch.ones_like(error) if frame_mask is None else frame_mask.to(error.dtype)
    loss = (error * weights).sum() / weights.sum().clamp_min(1.0)
    with torch.no_grad():
        per_example = (error * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        low = t < 0.5
        logs = {"loss": loss.item(),
                "loss_t_low": per_example[low].mean().item() if low.any() else float("nan"),
                "loss_t_high": per_example[~low].mean().item() if (~low).any() else float("nan")}
    return loss, logs
