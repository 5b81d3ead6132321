"""NAME=VALUE overrides of dataclass configs (--loss, --set)."""

from __future__ import annotations

import pytest

from soundstage.codec.losses import CodecLossConfig
from soundstage.common.errors import UsageError
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


def test_dotted_names_reach_nested_configs_and_validate_them() -> None:
    from soundstage.dit import dit_preset

    base = dit_preset("tiny")
    config = apply_overrides(base, ["conditioners.text_dropout=0.25", "depth=3"], "model option")
    assert config.conditioners.text_dropout == 0.25 and config.depth == 3
    assert base.conditioners.text_dropout != 0.25  # the preset is untouched
    with pytest.raises(UsageError, match="conditioners.cond_dim"):  # the message lists the nested names
        apply_overrides(base, ["conditioners.nope=1"], "model option")
    with pytest.raises(UsageError, match="conditioners.text_max_tokens needs an int"):
        apply_overrides(base, ["conditioners.text_max_tokens=many"], "model option")
