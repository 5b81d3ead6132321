"""codec_fingerprint: stable across save/load, changes with one weight or one config value."""

from __future__ import annotations

import dataclasses
import json
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


def test_bundled_codec_still_matches_the_fingerprint_its_dit_was_trained_on() -> None:
    # options added to the codec config later must not re-name codecs saved before them

    from soundstage.common.pretrained import resolve_pretrained

    dit_config = json.loads((resolve_pretrained("small", "dit") / "config.json").read_text())
    assert codec_fingerprint(FOACodec.from_pretrained("small")) == dit_config["codec_fingerprint"]


def test_a_later_option_turned_on_changes_the_fingerprint() -> None:
    torch.manual_seed(0)
    codec = FOACodec(CODEC_PRESETS["tiny"]).eval()
    before = codec_fingerprint(codec)
    codec.config = dataclasses.replace(codec.config, pitch_latents=True)
    assert codec_fingerprint(codec) != before
