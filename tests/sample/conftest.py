"""Tiny dummy components for the pipeline tests: a random tiny codec, a tiny ELSA and a tiny DiT whose
zero-initialised output layers are randomised, so that its velocity depends on x, t and every condition."""

from __future__ import annotations

import pytest
import torch

from soundstage.codec import CODEC_PRESETS, FOACodec, codec_fingerprint
from soundstage.dit import SpatialDiT, dit_preset
from soundstage.elsa_encoder import ELSA, elsa_preset
from soundstage.sample import SoundstagePipeline


def tiny_components(seed: int = 0) -> tuple[FOACodec, SpatialDiT, ELSA]:
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


@pytest.fixture(scope="session")
def pipe() -> SoundstagePipeline:
    return SoundstagePipeline(*tiny_components())
