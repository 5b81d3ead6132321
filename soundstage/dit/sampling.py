"""Rectified-flow samplers and classifier-free guidance: pure functions with one contract.

Contract (k-diffusion style): a sampler takes ``velocity_fn(x (B, C, L), t (B,)) -> v (B, C, L)``, the starting point
``noise`` (the state at ``timesteps[0]``: pure noise when that is 1) and ``timesteps`` ``(steps + 1,)`` decreasing to
0, and integrates ``dx/dt = v`` from ``x_1 = noise`` to ``x_0`` (``x_t = (1 - t) x0 + t noise``, so ``v = noise - x0``;
dit/objective.py trains it). Guidance and the direction lock live in the velocity function that
:func:`guided_velocity` builds, so every sampler gets them for free.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None]  # (steps done, x after that step)
Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x0_hat (B, C, L), t (B,)) -> x0_hat'
MIN_T = 1e-4  # the transform hook divides by t; samplers never evaluate at t = 0, this only guards misuse


def flow_timesteps(steps: int, shift: float = 1.0) -> torch.Tensor:
    """``(steps + 1,)`` float32 times from 1 to 0: uniform, warped by ``shift`` as in SD3 (``s t / (1 + (s - 1) t)``;
    ``shift > 1`` spends more steps at high noise)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * t / (1.0 + (shift - 1.0) * t)).float()


def _times(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x).expand(x.shape[0])


def sample_euler(velocity_fn: VelocityFn, noise: torch.Tensor, timesteps: torch.Tensor,
                 callback: Callback | None = None) -> torch.Tensor:
    """Euler's method (1st order, one model call per step) from ``noise`` at ``timesteps[0]`` to ``timesteps[-1]``."""
    x = noise
    for i, (t, t_next) in enumerate(itertools.pairwise(timesteps)):
        x = x + (t_next - t).to(x) * velocity_fn(x, _times(t, x))
        if callback is not None:
            callback(i + 1, x)
    return x


def sample_heun(velocity_fn: VelocityFn, noise: torch.Tensor, timesteps: torch.Tensor,
                callback: Callback | None = None) -> torch.Tensor:
    """Heun's method (2nd order, Karras et al. 2022 Alg. 1): the trapezoid of the velocities at both ends of a step;
    the step to t = 0 is Euler (the velocity is never evaluated at t = 0). Two model calls per step, one for the last.
    """
    x = noise
    for i, (t, t_next) in enumerate(itertools.pairwise(timesteps)):
        dt = (t_next - t).to(x)
        v = velocity_fn(x, _times(t, x))
        x_euler = x + dt * v
        if t_next > 0:
            x = x + dt * 0.5 * (v + velocity_fn(x_euler, _times(t_next, x)))
        else:
            x = x_euler
        if callback is not None:
            callback(i + 1, x)
    return x


SAMPLERS: dict[str, Callable[[VelocityFn, torch.Tensor, torch.Tensor, Callback | None], torch.Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
}


def _pad_tokens(tokens: torch.Tensor, mask: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``(B, N, D)`` tokens and their ``(B, N)`` mask to ``n`` tokens (padding masked out)."""
    extra = n - tokens.shape[1]
    return F.pad(tokens, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)


def concat_conditioning(a: Any, b: Any) -> Any:
    """Two ``Conditioning`` results (dataclasses with ``tokens (B, N, D)``, ``mask (B, N)``, ``global_vector (B, D)``)
    as one batch ``a`` then ``b``; the shorter token sequence is padded with masked-out tokens."""
    n = max(a.tokens.shape[1], b.tokens.shape[1])
    ta, ma = _pad_tokens(a.tokens, a.mask, n)
    tb, mb = _pad_tokens(b.tokens, b.mask, n)
    return dataclasses.replace(a, tokens=torch.cat((ta, tb)), mask=torch.cat((ma, mb)),
                               global_vector=torch.cat((a.global_vector, b.global_vector)))


def guided_velocity(dit: Callable[..., torch.Tensor], cond: Any, uncond: Any, cfg_scale: float,
                    interval: tuple[float, float] = (0.0, 1.0), transform: Transform | None = None,
                    frame_mask: torch.Tensor | None = None) -> VelocityFn:
    """The velocity function of classifier-free guidance: ``v_u + s (v_c - v_u)`` for t inside ``interval``, ``v_c``
    outside it.

    Args:
        dit: ``dit(x (B, C, L), t (B,), cond, frame_mask) -> v`` (a ``SpatialDiT``).
        cond: the request's ``Conditioning`` (batch B).
        uncond: the unconditional branch's ``Conditioning`` (batch B): all nulls, or a negative prompt's conditioning,
            which replaces it. Both branches run in one batched forward.
        cfg_scale: ``s`` >= 0; 1 is the conditional model alone (one forward), 0 the unconditional one.
        interval: ``(lo, hi)``, guidance only where ``lo <= t <= hi`` (Kynkäänniemi et al. 2024: guidance at the
            highest and lowest noise levels hurts more than it helps).
        transform: optional hook on the predicted clean latent ``x0_hat = x - t v`` (e.g. the direction lock); the
            velocity returned is then ``(x - transform(x0_hat, t)) / t``, so a sampler's next state agrees with it.
        frame_mask: ``(B, L)`` bool, True = a valid latent frame; None = all valid.
    """
    if cfg_scale < 0:
        raise ValueError(f"cfg_scale must be >= 0, got {cfg_scale}")
    lo, hi = interval
    both = concat_conditioning(cond, uncond) if cfg_scale != 1 else None
    both_mask = torch.cat((frame_mask, frame_mask)) if frame_mask is not None else None

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inside = (t >= lo) & (t <= hi)
        if both is None or not bool(inside.any()):
            v = dit(x, t, cond, frame_mask)
        else:
            v_c, v_u = dit(torch.cat((x, x)), torch.cat((t, t)), both, both_mask).chunk(2)
            v = torch.where(inside[:, None, None], v_u + cfg_scale * (v_c - v_u), v_c)
        if transform is None:
            return v
        t_b = t.clamp_min(MIN_T)[:, None, None].to(x)
        return (x - transform(x - t_b * v, t)) / t_b

    return velocity
