"""``codec_fingerprint``: a short hash that names one trained codec, config and weights together.

A latent folder records the fingerprint of the codec that encoded it and a DiT config stores the fingerprint of the
latents it was trained on, so that a pipeline can refuse to decode a DiT's output with any other codec (two codecs
of one recipe but other weights have unrelated latent spaces). The hash covers the config as JSON (sorted keys;
options added later are left out at their neutral values, ``model.LATER_OPTIONS``, and decode-only settings,
``model.DECODE_ONLY_OPTIONS``, always: they change how the decoder post-processes, not what a latent means) and
every state-dict tensor (name, dtype, shape, raw bytes) in sorted key order, so it is stable across
``save_pretrained`` / ``from_pretrained`` and changes when any weight does.
"""

from __future__ import annotations

import hashlib
import json

import torch

from soundstage.common.pretrained import config_to_dict

from .model import DECODE_ONLY_OPTIONS, LATER_OPTIONS

FINGERPRINT_HEX = 16  # characters of the sha256 kept: 64 bits, no accidental collision among our codecs


def codec_fingerprint(codec: torch.nn.Module) -> str:
    """16 hex characters of sha256 over ``codec.config`` (JSON) and its state dict's tensors in sorted key order."""
    config = config_to_dict(codec.config)  # type: ignore[attr-defined]
    if all(config.get(k) == v for k, v in LATER_OPTIONS.items()):
        config = {k: v for k, v in config.items() if k not in LATER_OPTIONS}
    config = {k: v for k, v in config.items() if k not in DECODE_ONLY_OPTIONS}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for key, value in sorted(codec.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:FINGERPRINT_HEX]
