"""Component folders: round trip (nested configs, config-only components), strict loading, format checks,
bundled-name resolution."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


@dataclass
class InnerConfig:
    name: str = "text"
    sizes: tuple[int, ...] = (1, 2)


@dataclass
class OuterConfig:
    """A DiT-like config: conditioner configs nested inside, one of them optional, tuples at every depth."""

    text: InnerConfig = field(default_factory=InnerConfig)
    timing: InnerConfig | None = None
    pair: tuple[float, float] = (0.5, 1.5)
    depth: int = 2


class Nested(nn.Module, PretrainedMixin):
    config_class = OuterConfig
    format_name = "soundstage.test_nested"
    pretrained_subfolder = "nested"

    def __init__(self, config: OuterConfig) -> None:
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.depth, 1)


class ConfigOnly(nn.Module, PretrainedMixin):
    """Stands in for a conditioner around a frozen external encoder: its parameters are rebuilt, never saved."""

    config_class = InnerConfig
    format_name = "soundstage.test_config_only"
    pretrained_subfolder = "config_only"
    has_weights = False

    def __init__(self, config: InnerConfig) -> None:
        super().__init__()
        self.config = config
        self.frozen = nn.Linear(len(config.sizes), 1)


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


def test_nested_configs_round_trip_as_dataclasses_with_tuples(tmp_path: Path) -> None:
    config = OuterConfig(text=InnerConfig("clap", (3, 4, 5)), timing=InnerConfig("seconds", ()), pair=(2.0, 3.0))
    Nested(config).save_pretrained(tmp_path / "m")
    loaded = Nested.from_pretrained(tmp_path / "m").config
    assert loaded == config
    assert isinstance(loaded.text, InnerConfig) and isinstance(loaded.timing, InnerConfig)
    assert isinstance(loaded.text.sizes, tuple) and isinstance(loaded.pair, tuple)
    Nested(OuterConfig()).save_pretrained(tmp_path / "none")  # the optional one absent
    assert Nested.from_pretrained(tmp_path / "none").config.timing is None


def test_an_unknown_nested_key_is_an_error_naming_its_path(tmp_path: Path) -> None:
    Nested(OuterConfig(timing=InnerConfig())).save_pretrained(tmp_path / "m")
    config_file = tmp_path / "m" / "config.json"
    values = json.loads(config_file.read_text())
    values["timing"]["szes"] = [1]
    config_file.write_text(json.dumps(values))
    with pytest.raises(FormatError, match=r"InnerConfig \(at 'timing'\) has no fields \['timing.szes'\]"):
        Nested.from_pretrained(tmp_path / "m")
    values["timing"] = 3
    config_file.write_text(json.dumps(values))
    with pytest.raises(FormatError, match="at 'timing'.*must be a JSON object"):
        Nested.from_pretrained(tmp_path / "m")


def test_a_config_only_component_is_a_folder_without_weights(tmp_path: Path) -> None:
    folder = ConfigOnly(InnerConfig("minilm", (1, 2, 3))).save_pretrained(tmp_path / "c")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    loaded = ConfigOnly.from_pretrained(folder)
    assert loaded.config == InnerConfig("minilm", (1, 2, 3)) and not loaded.training
    # strict all the same: a weights file there means the folder is something else
    save_file({"frozen.weight": torch.zeros(1, 3)}, folder / "model.safetensors")
    with pytest.raises(FormatError, match="has no weights of its own"):
        ConfigOnly.from_pretrained(folder)


def test_weights_are_still_required_where_a_component_has_them(tmp_path: Path) -> None:
    folder = Dummy(DummyConfig()).save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FormatError, match="model.safetensors is missing"):
        Dummy.from_pretrained(folder)


def test_init_from_pretrained_copies_weights_of_the_same_config_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = Dummy(DummyConfig(width=5))
    source.save_pretrained(tmp_path / "m")
    target = Dummy(DummyConfig(width=5))
    target.init_from_pretrained(tmp_path / "m")
    assert torch.equal(target.linear.weight, source.linear.weight)
    with pytest.raises(FormatError, match=r"different config \(width: 5 vs 6\)"):
        Dummy(DummyConfig(width=6)).init_from_pretrained(tmp_path / "m")
