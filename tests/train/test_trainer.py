"""The shared loop on a toy task: exact resume, EMA export, logging, stream sampler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from soundstage.common.pretrained import PretrainedMixin
from soundstage.train.trainer import StreamSampler, TrainConfig, latest_checkpoint, run_training


@dataclass
class ToyConfig:
    width: int = 8


class ToyModel(nn.Module, PretrainedMixin):
    config_class = ToyConfig
    format_name = "soundstage.test_toy"
    pretrained_subfolder = "toy"

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(4, config.width), nn.Dropout(0.2), nn.Linear(config.width, 1))


class NoisyDataset(torch.utils.data.Dataset):
    """Items drawn from the stream index, as the loop's contract asks."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((0, index))
        x = torch.tensor(rng.normal(size=4), dtype=torch.float32)
        return {"x": x, "y": x.sum(0, keepdim=True) + (index % 5)}


class ToyTask:
    name = "toy"

    def __init__(self, crash_at_step: int | None = None) -> None:
        self.crash_at_step = crash_at_step
        torch.manual_seed(0)
        self.model = ToyModel(ToyConfig())
        self.train_dataset = NoisyDataset()
        self.validations: list[int] = []

    def collate(self, items):
        return torch.utils.data.default_collate(items)

    def training_step(self, model, batch, step):
        if step == self.crash_at_step:
            raise KeyboardInterrupt  # stands in for kill -9: nothing after the last checkpoint is saved
        noise = 0.01 * torch.randn_like(batch["y"])  # uses the global RNG: must be restored on resume
        loss = (model.net(batch["x"]) - batch["y"] - noise).pow(2).mean()
        return loss, {"mse": loss.item()}

    def validate(self, model, step, writer):
        self.validations.append(step)
        return {"bias": float(model.net[-1].bias)}


def _config(out: Path, steps: int) -> TrainConfig:
    return TrainConfig(out_dir=out, max_steps=steps, batch_size=3, learning_rate=1e-2, warmup_steps=1,
                       log_every=1, validate_every=2, checkpoint_every=2, ema_decay=0.9)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path: Path) -> None:
    straight = run_training(ToyTask(), _config(tmp_path / "a", 4))
    with pytest.raises(KeyboardInterrupt):
        run_training(ToyTask(crash_at_step=3), _config(tmp_path / "b", 4))  # dies after the step-2 checkpoint
    assert latest_checkpoint(tmp_path / "b").name == "step_2"
    resumed = run_training(ToyTask(), _config(tmp_path / "b", 4), resume=True)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert latest_checkpoint(tmp_path / "b").name == "step_4"
    assert (tmp_path / "a" / "training_curve.png").stat().st_size > 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert set(steps) == {1, 2, 3, 4}


def test_refuses_to_overwrite_a_run_without_resume(tmp_path: Path) -> None:
    run_training(ToyTask(), _config(tmp_path, 2))
    with pytest.raises(FileExistsError, match="--resume"):
        run_training(ToyTask(), _config(tmp_path, 2))


def test_resume_refuses_a_model_built_with_another_config(tmp_path: Path) -> None:
    run_training(ToyTask(), _config(tmp_path, 2))
    assert json.loads((tmp_path / "model_config.json").read_text()) == {"width": 8}
    wider = ToyTask()
    wider.model = ToyModel(ToyConfig(width=16))
    with pytest.raises(ValueError, match="another model config \\(width: 8 then, 16 now\\).*--set"):
        run_training(wider, _config(tmp_path, 4), resume=True)
    run_training(ToyTask(), _config(tmp_path, 4), resume=True)  # the same config resumes
    assert latest_checkpoint(tmp_path).name == "step_4"


def test_exported_model_loads_and_is_the_ema(tmp_path: Path) -> None:
    task = ToyTask()
    exported = run_training(task, _config(tmp_path, 2))
    loaded = ToyModel.from_pretrained(exported)
    assert task.validations == [2]
    trained = task.model.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in loaded.state_dict().items())  # EMA lags the live weights


def test_stream_sampler_is_a_pure_function_of_position() -> None:
    full = StreamSampler(7, seed=3)
    first = [idx for _, idx in zip(range(20), full)]
    resumed = [idx for _, idx in zip(range(11), StreamSampler(7, seed=3, start=9))]
    assert first[9:] == resumed
    assert sorted(i % 7 for i in first[:7]) == list(range(7))  # each epoch visits every item once
    assert first[7:14] != [i + 7 for i in first[:7]]  # and reshuffles
    ranks = [[idx for _, idx in zip(range(5), StreamSampler(7, 3, rank=r, world_size=2))] for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(first[:10])


def test_train_only_freezes_every_other_parameter_and_rejects_a_prefix_that_matches_nothing(tmp_path: Path) -> None:
    task = ToyTask()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    config = _config(tmp_path / "last", 2)
    config.train_only = ("net.2",)
    run_training(task, config)
    after = task.model.state_dict()
    assert torch.equal(after["net.0.weight"], before["net.0.weight"]) and torch.equal(after["net.0.bias"], before["net.0.bias"])
    assert not torch.equal(after["net.2.weight"], before["net.2.weight"])
    assert json.loads((tmp_path / "last" / "train_config.json").read_text())["train_only"] == ["net.2"]
    config = _config(tmp_path / "typo", 2)
    config.train_only = ("decoder.head",)
    with pytest.raises(ValueError, match="decoder.head matches no parameter; names start with: net"):
        run_training(ToyTask(), config)
