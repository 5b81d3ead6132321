"""SpatialDiT: a diffusion transformer over codec latents, conditioned by :mod:`soundstage.conditioners`.

``forward(x (B, C, L), t (B,), cond, frame_mask (B, L)) -> velocity (B, C, L)``. Each block: adaLN-zero modulation
from (timestep embedding + the conditioning's global vector); self-attention over latent frames with rotary
positions and a key padding mask (so padded frames never change valid ones); cross-attention to the condition
tokens; an MLP. The output layer is zero-initialised, so an untrained model predicts zero velocity. The conditioners
are a submodule (their projections and nulls are saved with the DiT; the frozen text model and ELSA never are).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from soundstage.common.pretrained import PretrainedMixin, config_from_dict, config_to_dict, raise_if_configs_differ
from soundstage.conditioners import TRAINING_ONLY_FIELDS, Conditioners, ConditionersConfig, Conditioning

ROPE_BASE = 10_000.0


@dataclass
class DiTConfig:
    """Everything that defines a DiT; saved as ``config.json``. ``hop`` is in samples at ``sample_rate``."""

    latent_channels: int = 16  # the codec's latent width
    dim: int = 256  # transformer width
    depth: int = 6  # blocks
    heads: int = 4  # attention heads (self and cross)
    mlp_ratio: float = 4.0  # MLP hidden width / dim
    max_seconds: float = 8.0  # longest clip (training crops and the timing conditioner's range)
    sample_rate: int = 24000  # the codec's audio rate
    hop: int = 512  # the codec's samples per latent frame
    codec_fingerprint: str = ""  # codec_fingerprint() of the codec whose latents this DiT was trained on
    conditioners: ConditionersConfig = field(default_factory=ConditionersConfig)

    def __post_init__(self) -> None:
        for name in ("latent_channels", "dim", "depth", "heads", "sample_rate", "hop"):
            if getattr(self, name) < 1:
                raise ValueError(f"DiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"dim / heads must be an even whole number (rotary pairs), got {self.dim} / {self.heads}")
        if not (self.mlp_ratio > 0 and self.max_seconds > 0):
            raise ValueError("mlp_ratio and max_seconds must be > 0")


DIT_PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(dim=32, depth=2, heads=2, max_seconds=2.0, conditioners=ConditionersConfig(cond_dim=32)),
    "small": DiTConfig(dim=256, depth=6, heads=4, mlp_ratio=3.0, max_seconds=8.0),  # sized for 25 CFG steps of 5 s in < 2 s on 2 CPU cores
    # ImmerseDiffusion scale, for GPUs: the paper codec preset's 48 kHz, hop 2048, 64-channel latent
    "paper": DiTConfig(latent_channels=64, dim=1024, depth=24, heads=16, max_seconds=10.0, sample_rate=48000,
                       hop=2048, conditioners=ConditionersConfig(cond_dim=768)),
}


def dit_preset(name: str) -> DiTConfig:
    """A fresh copy of a preset config."""
    if name not in DIT_PRESETS:
        raise KeyError(f"unknown DiT preset {name!r}; choose one of {sorted(DIT_PRESETS)}")
    return config_from_dict(DiTConfig, config_to_dict(DIT_PRESETS[name]))


def with_training_fields(config: DiTConfig, conditioners: ConditionersConfig) -> DiTConfig:
    """``config`` with the training-only fields of ``conditioners`` (``TRAINING_ONLY_FIELDS``)."""
    own = {name: getattr(conditioners, name) for name in TRAINING_ONLY_FIELDS}
    return dataclasses.replace(config, conditioners=dataclasses.replace(config.conditioners, **own))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of flow times ``t`` ``(B,)`` in [0, 1] (scaled by 1000, as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def rotary_tables(length: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin ``(L, head_dim / 2)`` of the rotary angles for frame positions 0..L-1."""
    freqs = ROPE_BASE ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(-1) * freqs
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (first half, second half) of ``x`` ``(B, H, L, Dh)`` by the position angles."""
    a, b = x.float().chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1).to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x`` ``(B, L, D)`` normalised, then scaled and shifted per example (``(B, D)``)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
                key_mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``(B, L, D)``; ``key_mask`` ``(B, 1, 1, L)`` bool (True = attend) or None -> ``(B, L, D)``."""
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.out(y.transpose(1, 2).reshape(b, length, dim))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, cond_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(cond_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, D)``, ``tokens`` ``(B, N, cond_dim)``, ``token_mask`` ``(B, 1, 1, N)`` -> ``(B, L, D)``."""
        b, length, dim = x.shape
        head_dim = dim // self.heads
        q = self.q(x).view(b, length, self.heads, head_dim).transpose(1, 2)
        k, v = self.kv(tokens).view(b, tokens.shape[1], 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=token_mask)
        return self.out(y.transpose(1, 2).reshape(b, length, dim))


class DiTBlock(nn.Module):
    """adaLN-zero self-attention and MLP (gated residuals), plain pre-norm cross-attention."""

    def __init__(self, dim: int, cond_dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = CrossAttention(dim, cond_dim, heads)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)  # adaLN-zero: every block starts as the identity
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
                key_mask: torch.Tensor | None, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, D)``, ``c`` ``(B, D)`` (SiLU already applied) -> ``(B, L, D)``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=-1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1), rotary, key_mask)
        x = x + self.cross(self.norm2(x), tokens, token_mask)
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm3(x), shift2, scale2))


class SpatialDiT(nn.Module, PretrainedMixin):
    """Velocity model of rectified flow over codec latents (see the module docstring)."""

    config_class = DiTConfig
    format_name = "soundstage.dit"
    pretrained_subfolder = "dit"

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        dim, cond_dim = config.dim, config.conditioners.cond_dim
        self.conditioners = Conditioners(config.conditioners, config.max_seconds)
        self.proj_in = nn.Linear(config.latent_channels, dim)
        self.time_mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.global_proj = nn.Linear(cond_dim, dim)
        self.blocks = nn.ModuleList(DiTBlock(dim, cond_dim, config.heads, config.mlp_ratio)
                                    for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation_out = nn.Linear(dim, 2 * dim)
        self.proj_out = nn.Linear(dim, config.latent_channels)
        for layer in (self.modulation_out, self.proj_out):  # zero output at init
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def max_frames(self) -> int:
        """Latent frames of the longest clip: ceil(max_seconds * sample_rate / hop)."""
        return math.ceil(self.config.max_seconds * self.config.sample_rate / self.config.hop)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.config.sample_rate / self.config.hop

    def num_parameters(self) -> int:
        """Trainable parameters (the frozen text model and ELSA are not ours)."""
        return sum(p.numel() for p in self.parameters())

    def check_init_config(self, other: Any, path: str | Path) -> None:
        """A folder may initialise this model when their configs agree outside the conditioners' training-only
        fields (``TRAINING_ONLY_FIELDS``: dropouts and the mode split decide what training drops, not the weights)."""
        raise_if_configs_differ(self.config, with_training_fields(other, self.config.conditioners), path)

    def init_from_pretrained(self, path: str | Path) -> None:
        """Copy a saved DiT's weights and config, keeping this model's training-only conditioner fields, so that a
        fine-tune may train another mode split than the run that made the folder (and its export says which)."""
        own = self.config.conditioners
        super().init_from_pretrained(path)
        self.config = with_training_fields(self.config, own)

    def attach_elsa(self, elsa: nn.Module) -> None:
        """Give the descriptive conditioner its (frozen) ELSA; see :meth:`Conditioners.attach_elsa`."""
        self.conditioners.attach_elsa(elsa)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: weight decay on matrices; none on norms, biases and the conditioners' learned nulls."""
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            (decay if parameter.ndim >= 2 and "null" not in name else no_decay).append(parameter)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity ``(B, C, L)`` at latents ``x`` ``(B, C, L)`` and times ``t`` ``(B,)`` in [0, 1] (1 = noise).

        ``frame_mask`` ``(B, L)`` bool, True = a real frame (None: all real); padded frames are never attended to
        and their output is zero.
        """
        b, channels, length = x.shape
        if channels != self.config.latent_channels:
            raise ValueError(f"expected {self.config.latent_channels} latent channels, got {channels}")
        h = self.proj_in(x.transpose(1, 2))  # (B, L, D)
        c = F.silu(self.time_mlp(timestep_embedding(t, 256).to(h.dtype)) + self.global_proj(cond.global_vector))
        rotary = rotary_tables(length, self.config.dim // self.config.heads, x.device)
        key_mask = None if frame_mask is None else frame_mask.view(b, 1, 1, length)
        token_mask = cond.mask.view(b, 1, 1, -1)
        for block in self.blocks:
            h = block(h, c, rotary, key_mask, cond.tokens, token_mask)
        shift, scale = self.modulation_out(c).chunk(2, dim=-1)
        v = self.proj_out(modulate(self.norm_out(h), shift, scale)).transpose(1, 2)
        return v if frame_mask is None else v * frame_mask.unsqueeze(1)
