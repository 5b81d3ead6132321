"""The codec task's parts the loop relies on: the adversary's placement, typed per-preset values."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from soundstage.codec.losses import MultiScaleSTFTDiscriminator
from soundstage.codec.model import CODEC_PRESETS
from soundstage.train.codec_task import CODEC_DATA_DEFAULTS, CODEC_TRAIN_DEFAULTS, CodecDataConfig, CodecTask
from soundstage.train.trainer import TrainConfig


def _task(discriminator: MultiScaleSTFTDiscriminator | None) -> CodecTask:
    optimizer = None if discriminator is None else torch.optim.AdamW(discriminator.parameters())
    return CodecTask(model=None, train_dataset=None, valid_audio=None, loss=None, out_dir=Path("."),  # type: ignore[arg-type]
                     discriminator=discriminator, disc_optimizer=optimizer)


def test_setup_puts_the_adversary_on_the_accelerator_s_device() -> None:
    task = _task(MultiScaleSTFTDiscriminator())
    task.disc_optimizer.param_groups[0]["lr"] = 0.125
    task.setup(SimpleNamespace(device=torch.device("meta")))  # a GPU's path, without a GPU
    params = list(task.discriminator.parameters())
    assert params and all(p.is_meta for p in params)
    held = [p for group in task.disc_optimizer.param_groups for p in group["params"]]
    assert all(a is b for a, b in zip(held, params, strict=True))  # the optimiser trains the moved weights
    assert task.disc_optimizer.param_groups[0]["lr"] == 0.125  # with its settings
    assert task.extra_state() == [task.discriminator, task.disc_optimizer]
    _task(None).setup(SimpleNamespace(device=torch.device("meta")))  # nothing to place


def test_every_preset_has_loop_values_and_data_values() -> None:
    assert set(CODEC_TRAIN_DEFAULTS) == set(CODEC_DATA_DEFAULTS) == set(CODEC_PRESETS)
    for values in CODEC_TRAIN_DEFAULTS.values():
        TrainConfig(out_dir=Path("run"), **values)  # every key is a TrainConfig field
    with pytest.raises(TypeError, match="crop_seconds"):
        TrainConfig(out_dir=Path("run"), crop_seconds=1.0)  # type: ignore[call-arg]


def test_data_config_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="crop_seconds"):
        CodecDataConfig(crop_seconds=0.0, valid_clips=2, valid_seconds=1.0, cache_mb=0)
    with pytest.raises(ValueError, match="valid_clips"):
        CodecDataConfig(crop_seconds=1.0, valid_clips=0, valid_seconds=1.0, cache_mb=0)
