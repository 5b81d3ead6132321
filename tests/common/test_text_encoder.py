"""FrozenTextEncoder: bundled MiniLM and local models by path, pooling, cache, bad text."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from soundstage.common.text_encoder import FrozenTextEncoder, TextEncoderError, bundled_text_model_path


@pytest.fixture(scope="module")
def encoder() -> FrozenTextEncoder:
    return FrozenTextEncoder("minilm")


def test_bundled_minilm_gives_unit_features_and_caches(encoder: FrozenTextEncoder) -> None:
    encoder.clear_cache()
    features = encoder.encode(["a dog barks", "rain on a tin roof", "a dog barks"])
    assert features.shape == (3, 384) and encoder.dim == 384
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(features[0], features[2])
    assert len(encoder._pooled) == 2  # keyed by text: the repeated caption is computed once
    assert FrozenTextEncoder("minilm")._pooled is encoder._pooled  # one cache per model and settings

    def no_forward(*args, **kwargs):
        raise AssertionError("cached texts must not reach the model")

    original, encoder._forward = encoder._forward, no_forward
    try:
        torch.testing.assert_close(encoder(["rain on a tin roof"])[0], features[1])
    finally:
        encoder._forward = original


def test_pooling_ignores_padding(encoder: FrozenTextEncoder) -> None:
    alone = FrozenTextEncoder("minilm", cache_size=0).encode(["a bell"])
    padded = FrozenTextEncoder("minilm", cache_size=0).encode(["a bell", "a much longer sentence about a church bell"])
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(padded[0], padded[1])


def test_token_features_and_mask(encoder: FrozenTextEncoder) -> None:
    tokens, mask = encoder.encode_tokens(["a bell", "a bell rings twice in a stone church"])
    assert tokens.shape[:2] == mask.shape and tokens.shape[-1] == 384
    assert mask[0].sum() < mask[1].sum() and mask[1].all()
    assert torch.all(tokens[0][~mask[0]] == 0)
    embeddings, _ = encoder.encode_tokens(["a bell"], layer=0)
    assert embeddings.shape[-1] == 384


def test_overlong_text_is_truncated_with_a_warning() -> None:
    short = FrozenTextEncoder("minilm", max_length=8)
    with pytest.warns(UserWarning, match="truncated to 8 tokens"):
        features = short.encode(["a very long caption " * 20])
    assert features.shape == (1, 384)


def test_bad_texts_are_rejected(encoder: FrozenTextEncoder) -> None:
    with pytest.raises(TextEncoderError, match="text 1 is empty"):
        encoder.encode(["a dog", "   "])
    with pytest.raises(TextEncoderError, match="at least one text"):
        encoder.encode([])
    with pytest.raises(TypeError, match="wrap it in a list"):
        encoder.encode("a dog")
    with pytest.raises(TypeError, match="text 0 is a int"):
        encoder.encode([3])


def test_missing_model_error_names_how_to_pass_a_path(tmp_path: Path) -> None:
    with pytest.raises(TextEncoderError, match="path_or_name"):
        FrozenTextEncoder(tmp_path / "nowhere")
    with pytest.raises(TextEncoderError, match="--text-encoder PATH"):
        FrozenTextEncoder("some-hub/model-name", missing_hint="pass --text-encoder PATH")
    with pytest.raises(TextEncoderError, match="no config.json"):
        FrozenTextEncoder(tmp_path)


def test_any_local_transformers_model_by_path(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bundled_text_model_path()).save_pretrained(tmp_path)
    local = FrozenTextEncoder(tmp_path, normalize=False)
    assert local.dim == 32 and local.num_layers == 2
    assert local.encode(["a dog barks"]).shape == (1, 32)
    assert not any(p.requires_grad for p in local.model.parameters())


def test_copies_share_the_frozen_model(encoder: FrozenTextEncoder) -> None:
    assert copy.deepcopy(encoder) is encoder
    assert FrozenTextEncoder("minilm").model is encoder.model  # one loaded copy per process
