"""Component folders: round trip, strict loading, format checks, bundled-name resolution."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from soundstage.common.pretrained import FormatError, PretrainedMixin


@dataclass
class DummyConfig:
    width: int = 4
    kernel: tuple[int, int] = (3, 3)


class Dummy(nn.Module, PretrainedMixin):
    config_class = DummyConfig
    format_name = "soundstage.test_dummy"
    pretrained_subfolder = "dummy"

    def __init__(self, config: DummyConfig) -> None:
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.width, 2)


class Other(Dummy):
    format_name = "soundstage.test_other"


def test_round_trip_keeps_config_and_weights(tmp_path: Path) -> None:
    model = Dummy(DummyConfig(width=6, kernel=(5, 1)))
    model.save_pretrained(tmp_path / "m")
    loaded = Dummy.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and isinstance(loaded.config.kernel, tuple)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert not loaded.training


def test_model_folder_with_subfolder_is_found(tmp_path: Path) -> None:
    Dummy(DummyConfig()).save_pretrained(tmp_path / "generation_model" / "dummy")
    assert isinstance(Dummy.from_pretrained(tmp_path / "generation_model"), Dummy)


def test_missing_folder_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="config.json"):
        Dummy.from_pretrained(tmp_path / "nowhere")


def test_another_component_is_refused(tmp_path: Path) -> None:
    Other(DummyConfig()).save_pretrained(tmp_path / "m")
    with pytest.raises(FormatError, match="'soundstage.test_other' model, not a 'soundstage.test_dummy'"):
        Dummy.from_pretrained(tmp_path / "m")


def test_unknown_config_field_and_version_are_refused(tmp_path: Path) -> None:
    Dummy(DummyConfig()).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "widht": 3}))
    with pytest.raises(FormatError, match="widht"):
        Dummy.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "_format_version": 99}))
    with pytest.raises(FormatError, match="version 99"):
        Dummy.from_pretrained(tmp_path / "m")


def test_partial_weights_are_a_named_error_not_a_silent_load(tmp_path: Path) -> None:
    folder = Dummy(DummyConfig()).save_pretrained(tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    weights.pop("linear.bias")
    weights["extra.weight"] = torch.zeros(1)
    save_file(weights, folder / "model.safetensors", metadata={"format": "soundstage.test_dummy"})
    with pytest.raises(FormatError, match=r"missing keys \['linear.bias'\].*unexpected keys \['extra.weight'\]"):
        Dummy.from_pretrained(folder)
