"""NAME=VALUE overrides of dataclass configs (--loss, --set)."""

from __future__ import annotations

import pytest

from soundstage.codec.losses import CodecLossConfig
from soundstage.common.overrides import apply_overrides


def test_overrides_set_typed_fields_and_name_what_is_settable() -> None:
    config = apply_overrides(CodecLossConfig(), ["broadband_weight=5", "adversarial=true", "spatial_bands=8"])
    assert (config.broadband_weight, config.adversarial, config.spatial_bands) == (5.0, True, 8)
    assert config.stft_weight == 1.0  # untouched fields keep their defaults
    with pytest.raises(ValueError, match="cannot set loss option 'brodband_weight=5'.*NAME one of .*broadband_weight"):
        apply_overrides(CodecLossConfig(), ["brodband_weight=5"], "loss option")
    with pytest.raises(ValueError, match="NAME one of"):
        apply_overrides(CodecLossConfig(), ["fft_sizes=512"])  # a tuple: not settable from the command line
    with pytest.raises(ValueError, match="NAME=VALUE"):
        apply_overrides(CodecLossConfig(), ["kl_weight"])
    with pytest.raises(ValueError, match="needs a float value, got 'high'"):
        apply_overrides(CodecLossConfig(), ["kl_weight=high"])
    with pytest.raises(ValueError, match="needs a bool value"):
        apply_overrides(CodecLossConfig(), ["adversarial=maybe"])
