"""Direction latents: the last three latent channels carry each latent frame's direction, and the decoder obeys them.

The net intensity of FOA is, up to the STFT window, the zero-lag correlation of W with X, Y and Z, so it can be sent
exactly with three numbers per latent frame instead of being left to the net residue of a learned decoder's
per-bin errors (which, for a diffuse, reverberant clip, is as large as the clip's own small net intensity):

- encoder side, :func:`frame_direction`: per latent frame and vector channel ``c`` in x, y, z order, the regression
  coefficient of the channel on W, ``d_c = sum w v_c / (sum w^2 + floor)``. A plane wave from unit direction ``u``
  gives ``d = u`` (SN3D), a diffuse field ``|d|`` near 0, whatever the level. The codec writes
  ``DIRECTION_GAIN * d`` into its last three latent channels (posterior mean; a small fixed posterior std).
- decoder side, :func:`impose_frame_direction`: X, Y and Z get a smoothly varying multiple of the decoded W added
  (panning: it moves intensity and nothing else; W is untouched), solved so that every frame's coefficient equals
  the latent's. The clip's direction is then right as far as the decoded W's level over time is.

For a diffusion model the three channels are an explicit, low-rate direction track, the part of the latent that a
spatial prompt should steer. Measurements: docs/codec.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from soundstage.foa import XYZ

NUM_DIRECTION_CHANNELS = 3
DIRECTION_GAIN = 3.0  # latent value per unit regression coefficient: puts the channels near the others' spread
DIRECTION_STD = 0.03  # fixed posterior std of the direction channels (unscaled latent units)
ENERGY_FLOOR = 1e-8  # per sample, added to a frame's W energy (-80 dBFS): silent frames get d = 0, not 0 / 0


def _frames(audio: torch.Tensor, hop: int) -> torch.Tensor:
    """``(B, C, L * hop)`` -> ``(B, C, L, hop)``; raises if the length is not a multiple of ``hop``."""
    if audio.shape[-1] % hop:
        raise ValueError(f"audio length {audio.shape[-1]} is not a multiple of the hop {hop}")
    return audio.reshape(*audio.shape[:-1], audio.shape[-1] // hop, hop)


def frame_direction(foa: torch.Tensor, hop: int) -> torch.Tensor:
    """``(B, 4, L * hop)`` AmbiX audio -> ``(B, 3, L)`` regression coefficients of x, y, z on W per frame."""
    frames = _frames(foa, hop)
    w = frames[:, 0]
    energy = w.square().sum(-1) + ENERGY_FLOOR * hop  # (B, L)
    cross = (w.unsqueeze(1) * frames[:, list(XYZ)]).sum(-1)  # (B, 3, L)
    return cross / energy.unsqueeze(1)


def clamp_to_unit_ball(direction: torch.Tensor) -> torch.Tensor:
    """``(B, 3, L)`` regression coefficients with each frame's vector shortened to length <= 1.

    One plane wave gives ``|d| = 1`` and a mix of directions less; a generated track may overshoot, which would ask
    the decoder for more directional energy than the sound has.
    """
    return direction / direction.norm(dim=1, keepdim=True).clamp_min(1.0)


def impose_frame_direction(foa: torch.Tensor, direction: torch.Tensor, hop: int, iterations: int = 8) -> torch.Tensor:
    """Add smooth multiples of W to X, Y, Z so that each frame's regression coefficients on W are ``direction``.

    The coefficients here have no energy floor (``sum w v_c = direction_c * sum w^2`` per frame), so a frame whose
    decoded W is silent asks for no gain at all (with the floor it would ask for an unbounded one).

    Args:
        foa: ``(B, 4, L * hop)`` AmbiX audio (the decoder's output).
        direction: ``(B, 3, L)`` target coefficients in x, y, z order.
        iterations: Jacobi steps for the per-frame gains (a tridiagonal system: the gain is linear between frame
            centres); each removes at least half of the remaining error for signals steady within a frame.

    Returns:
        ``(B, 4, L * hop)`` audio, W unchanged. Differentiable (the codec trains through it).
    """
    frames = _frames(foa, hop)
    w = frames[:, 0]  # (B, L, hop)
    vectors = frames[:, list(XYZ)]  # (B, 3, L, hop)
    energy = w.square().sum(-1).unsqueeze(1)  # (B, 1, L)
    goal = direction * energy
    step = 1.0 / energy.clamp_min(1e-12)  # >= the inverse diagonal: a damped, convergent Jacobi step
    gain = torch.zeros_like(direction)

    def corrected(gain: torch.Tensor) -> torch.Tensor:  # gain (B, 3, L) at frame centres -> (B, 3, L, hop)
        per_sample = F.interpolate(gain, scale_factor=hop, mode="linear", align_corners=False)
        return vectors + _frames(per_sample, hop) * w.unsqueeze(1)

    for _ in range(iterations):
        cross = (w.unsqueeze(1) * corrected(gain)).sum(-1)
        gain = gain + (goal - cross) * step
    return ambix_from_w_xyz(foa[:, 0], corrected(gain).flatten(-2))


def ambix_from_w_xyz(w: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` W and ``(B, 3, ...)`` x, y, z components -> ``(B, 4, ...)`` in AmbiX channel order."""
    by_channel = dict(zip(XYZ, xyz.unbind(1)))
    return torch.stack([w, *(by_channel[c] for c in range(1, 4))], dim=1)  # W is channel 0
