"""FOA codec: a 128x VAE over 4-channel AmbiX audio, the latent space of the diffusion model.

``FOACodec.from_pretrained("small")`` loads the bundled codec; ``encode(foa) -> latent``, ``decode(latent) -> foa``.
"""

from .fingerprint import codec_fingerprint
from .latent_norm import LatentNormalizer
from .model import (
    CODEC_PRESETS,
    COMPRESSION,
    CodecInputError,
    FOACodec,
    FOACodecConfig,
    measure_codec_latent_statistics,
    measure_latent_scale,
)

__all__ = [
    "CODEC_PRESETS",
    "COMPRESSION",
    "CodecInputError",
    "FOACodec",
    "FOACodecConfig",
    "LatentNormalizer",
    "codec_fingerprint",
    "measure_codec_latent_statistics",
    "measure_latent_scale",
]
