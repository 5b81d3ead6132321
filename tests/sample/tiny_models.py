"""Tiny dummy generation components, shared by the pipeline, batch and ``soundstage generate`` tests: a random tiny
codec, a tiny ELSA and a tiny DiT (paired with that codec by its fingerprint) whose zero-initialised output layers are
randomised, so that its velocity depends on x, t and every condition. :func:`save_generation_folder` writes them as
a generation folder (``codec/``, ``elsa/``, ``dit/``) that ``SoundstagePipeline.from_pretrained`` loads."""

from __future__ import annotations

from pathlib import Path

import torch

from soundstage.codec import CODEC_PRESETS, FOACodec, codec_fingerprint
from soundstage.dit import SpatialDiT, dit_preset
from soundstage.elsa_encoder import ELSA, elsa_preset


def tiny_components(seed: int = 0) -> tuple[FOACodec, SpatialDiT, ELSA]:
    """(codec, DiT, ELSA), deterministic for ``seed``; the DiT's ``codec_fingerprint`` is this codec's."""
    torch.manual_seed(seed)
    codec = FOACodec(CODEC_PRESETS["tiny"]).eval()
    config = dit_preset("tiny")
    config.latent_channels, config.sample_rate, config.hop = 8, codec.sample_rate, codec.hop
    config.codec_fingerprint = codec_fingerprint(codec)
    dit = SpatialDiT(config).eval()
    with torch.no_grad():
        for parameter in dit.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.3)
    return codec, dit, ELSA(elsa_preset("tiny")).eval()


def save_generation_folder(folder: Path, seed: int = 0) -> Path:
    """Save :func:`tiny_components` to ``folder/{codec,dit,elsa}`` and return ``folder``."""
    for name, part in zip(("codec", "dit", "elsa"), tiny_components(seed)):
        part.save_pretrained(folder / name)
    return folder
