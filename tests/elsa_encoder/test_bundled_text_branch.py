"""The bundled ELSA's text branch is pinned: the bundled DiT conditions its descriptive mode on these text embeddings
(soundstage/conditioners/descriptive.py), so retraining ELSA must train the audio branch only (docs/elsa.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open

from soundstage.elsa_encoder import ELSA

# SHA-256 over the names and float32 bytes of the text projection's tensors (sorted by name), as first bundled.
TEXT_PROJECTION_SHA256 = "fb78997a4d0b88340f0c820e8fef65a76278bfe44586e066788c32338a28841e"
FIXTURE = Path(__file__).parent / "data" / "bundled_text_embeddings.safetensors"


def _text_projection_digest(model: ELSA) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("text_projection."):
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def test_bundled_text_branch_is_unchanged() -> None:
    model = ELSA.from_pretrained("small")
    assert model.text_top_layers is None and model.config.text_encoder == "minilm"
    assert (model.config.text_dim, model.config.projection_hidden, model.config.embed_dim) == (384, 512, 512)
    assert _text_projection_digest(model) == TEXT_PROJECTION_SHA256


def test_bundled_text_embeddings_match_the_stored_ones() -> None:
    with safe_open(str(FIXTURE), framework="pt") as f:
        stored = f.get_tensor("embeddings")
        captions = f.metadata()["captions"].split("\n")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fixture was computed on one thread
    try:
        embeddings = ELSA.from_pretrained("small").embed_text(captions)
    finally:
        torch.set_num_threads(threads)
    # Equal parameters make these equal on one machine; the tolerance only admits another CPU's float rounding.
    torch.testing.assert_close(embeddings, stored, rtol=0.0, atol=1e-6)
