"""Inference methods return tensors without grad; the module's own passes, and gradients through an input that
asks for them, keep autograd."""

from __future__ import annotations

import torch

from soundstage.codec.model import CODEC_PRESETS, FOACodec
from soundstage.elsa_encoder import ELSA, elsa_preset


def test_codec_encode_and_decode_return_tensors_without_grad() -> None:
    codec = FOACodec(CODEC_PRESETS["tiny"])
    foa = 0.1 * torch.randn(1, 4, 4096)
    latent = codec.encode(foa)
    assert not latent.requires_grad and not codec.decode(latent).requires_grad
    assert not codec.encode(foa.numpy()).requires_grad  # arrays too
    wanted = latent.clone().requires_grad_()
    codec.decode(wanted).square().sum().backward()  # optimising a latent through the decoder still works
    assert wanted.grad is not None and wanted.grad.abs().sum() > 0
    reconstruction, mean, _ = codec(foa)  # the training pass keeps the graph to the weights
    assert reconstruction.requires_grad and mean.requires_grad


def test_elsa_audio_embeddings_and_predictions_return_tensors_without_grad() -> None:
    elsa = ELSA(elsa_preset("tiny")).eval()
    foa = 0.1 * torch.randn(2, 4, elsa.config.sample_rate)
    assert not elsa.embed_audio(foa, elsa.config.sample_rate).requires_grad
    assert not any(v.requires_grad for v in elsa.predict_spatial(foa, elsa.config.sample_rate).values())
    assert elsa.embed_audio_features(*elsa.audio_features(foa, elsa.config.sample_rate)).requires_grad  # training
