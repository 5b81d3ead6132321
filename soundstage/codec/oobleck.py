"""The waveform backbone behind ``FOACodecConfig(arch="oobleck")`` (preset ``paper``): diffusers' ``AutoencoderOobleck``.

Stable Audio Open's VAE with 4 audio channels, as in ImmerseDiffusion: at 48 kHz, hop 2048 and a 64-channel latent.
Every layer runs at the sample rate, so it is for GPUs; the frame-rate ``stft`` backbone is the CPU design.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .model import FOACodecConfig


class OobleckBackbone(nn.Module):
    """``encode`` ``(B, 4, L * hop)`` -> ``(B, 2 * C, L)`` posterior parameters (means, then scales), ``decode``
    ``(B, C, L)`` -> ``(B, 4, L * hop)`` audio."""

    def __init__(self, config: FOACodecConfig):
        super().__init__()
        from diffusers import AutoencoderOobleck  # heavy import, only for this architecture

        self.oobleck = AutoencoderOobleck(
            encoder_hidden_size=config.oobleck_hidden,
            downsampling_ratios=list(config.oobleck_ratios),
            channel_multiples=list(config.oobleck_multiples),
            decoder_channels=config.oobleck_decoder_channels,
            decoder_input_channels=config.latent_channels,
            audio_channels=4,
            sampling_rate=config.sample_rate,
        )

    def encode(self, foa: torch.Tensor) -> torch.Tensor:
        return self.oobleck.encoder(foa)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.oobleck.decoder(latent)

    def set_output_eq(self, hz: Sequence[float], db: Sequence[float]) -> None:
        """No output equaliser here (the config refuses one); setting none is accepted."""
        if hz or db:
            raise ValueError("the output equaliser applies to the stft architecture only")

    def reorder_latent_channels(self, order: list[int], silenced: Sequence[int]) -> None:
        raise ValueError("repurposing latent channels is implemented for the stft architecture only")
