"""codec_fingerprint: stable across save/load, changes with one weight or one config value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from soundstage.codec import CODEC_PRESETS, FOACodec, codec_fingerprint


def test_fingerprint_is_stable_across_save_load_and_changes_with_one_weight(tmp_path: Path) -> None:
    torch.manual_seed(0)
    codec = FOACodec(CODEC_PRESETS["tiny"]).eval()
    fingerprint = codec_fingerprint(codec)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert codec_fingerprint(FOACodec.from_pretrained(codec.save_pretrained(tmp_path / "codec"))) == fingerprint

    with torch.no_grad():
        next(codec.parameters()).view(-1)[0] += 1e-6
    changed = codec_fingerprint(codec)
    assert changed != fingerprint

    codec.config = dataclasses.replace(codec.config, output_eq_hz=(100.0,), output_eq_db=(0.0,))
    assert codec_fingerprint(codec) != changed


def test_bundled_codec_fingerprint_is_reproducible() -> None:
    assert codec_fingerprint(FOACodec.from_pretrained("small")) == codec_fingerprint(FOACodec.from_pretrained("small"))
