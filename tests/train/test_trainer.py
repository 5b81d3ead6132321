"""The shared loop on toy tasks: exact resume, the EMA, a task's extra modules, gradient accumulation, parameter
groups, logging, stream sampler."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from soundstage.common.pretrained import PretrainedMixin
from soundstage.train.trainer import StreamSampler, TrainConfig, latest_checkpoint, param_groups, run_training


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


@pytest.mark.parametrize("accumulation", [1, 2])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path: Path, accumulation: int) -> None:
    def config(out: Path) -> TrainConfig:
        c = _config(out, 4)
        c.gradient_accumulation_steps = accumulation
        return c

    straight = run_training(ToyTask(), config(tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt):
        run_training(ToyTask(crash_at_step=3), config(tmp_path / "b"))  # dies after the step-2 checkpoint
    assert latest_checkpoint(tmp_path / "b").name == "step_2"
    resumed = run_training(ToyTask(), config(tmp_path / "b"), resume=True)
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


class RecordingTask(ToyTask):
    """Records the live weights each step starts from: step s sees w_s, the weights after s optimiser steps."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[int, dict[str, torch.Tensor]] = {}

    def training_step(self, model, batch, step):
        self.seen[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return super().training_step(model, batch, step)


def test_exported_model_is_the_ema_of_the_live_weights(tmp_path: Path) -> None:
    task = RecordingTask()
    exported = run_training(task, _config(tmp_path, 3))  # ema_decay 0.9
    weights = [task.seen[1], task.seen[2], task.model.state_dict()]  # w_1, w_2, w_3
    ema = dict(weights[0])  # AveragedModel: the first update copies
    for w in weights[1:]:
        ema = {k: 0.9 * ema[k] + 0.1 * w[k] for k in ema}
    loaded = ToyModel.from_pretrained(exported).state_dict()
    assert loaded.keys() == ema.keys()
    for key in ema:
        torch.testing.assert_close(loaded[key], ema[key], rtol=1e-6, atol=1e-7)
    assert not torch.equal(loaded["net.2.weight"], weights[-1]["net.2.weight"])  # the EMA lags the live weights
    assert task.validations == [2, 3]


class Teacher(nn.Module):
    """A frozen extra module: a fixed linear map the model learns to imitate."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.dropout = nn.Dropout(0.5)  # in train mode it would change every output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear(x))


class DistillTask(ToyTask):
    """A task with a frozen extra module that the loop has placed and prepared through ``setup``."""

    def __init__(self) -> None:
        super().__init__()
        self.teacher = Teacher()  # built on the CPU in train mode, as a task's constructor would
        self.setup_devices: list[torch.device] = []

    def setup(self, accelerator) -> None:
        self.teacher.to(accelerator.device).eval().requires_grad_(False)
        self.setup_devices.append(accelerator.device)

    def training_step(self, model, batch, step):
        target = self.teacher(batch["x"])
        assert target.device == batch["x"].device and not target.requires_grad
        loss = (model.net(batch["x"]) - target).pow(2).mean()
        return loss, {"mse": loss.item()}


def test_a_task_s_frozen_module_is_placed_once_and_never_trained(tmp_path: Path) -> None:
    task = DistillTask()
    before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    run_training(task, _config(tmp_path, 2))
    assert len(task.setup_devices) == 1
    assert all(p.device.type == task.setup_devices[0].type for p in task.teacher.parameters())
    assert not task.teacher.training and not any(p.requires_grad for p in task.teacher.parameters())
    for key, value in task.teacher.state_dict().items():
        assert torch.equal(value, before[key])
    run_training(task, _config(tmp_path, 4), resume=True)  # setup runs again before the checkpoint is restored
    assert len(task.setup_devices) == 2


def test_setup_places_a_frozen_module_on_the_accelerator_s_device() -> None:
    task = DistillTask()
    task.setup(SimpleNamespace(device=torch.device("meta")))  # the device path without a GPU
    assert all(p.is_meta for p in task.teacher.parameters()) and not task.teacher.training


class LinearTask:
    """y = A x + noise-free targets: a deterministic loss, so batch arithmetic can be compared exactly."""

    name = "linear"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = ToyModel(ToyConfig())
        self.model.net[1].p = 0.0  # no dropout
        self.train_dataset = NoisyDataset()

    def collate(self, items):
        return torch.utils.data.default_collate(items)

    def training_step(self, model, batch, step):
        loss = (model.net(batch["x"]) - batch["y"]).pow(2).mean()
        return loss, {}

    def validate(self, model, step, writer):
        return {}


@pytest.mark.parametrize("clip", [1e9, 0.05], ids=["unclipped", "clipped"])
def test_accumulating_two_batches_is_one_batch_twice_as_large(tmp_path: Path, clip: float) -> None:
    def run(name: str, batch_size: int, accumulation: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
        config = TrainConfig(out_dir=tmp_path / name, max_steps=3, batch_size=batch_size, learning_rate=1e-2,
                             warmup_steps=1, log_every=1, grad_clip=clip, gradient_accumulation_steps=accumulation)
        task = LinearTask()
        run_training(task, config)
        log = [json.loads(line) for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
        return task.model.state_dict(), [r for r in log if "loss" in r]

    (large, large_log), (accumulated, accumulated_log) = run("large", 4, 1), run("accumulated", 2, 2)
    for key in large:
        torch.testing.assert_close(accumulated[key], large[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(accumulated_log, large_log, strict=True):  # AdamW hides a gradient's scale; the norm does not
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["grad_norm"] == pytest.approx(b["grad_norm"])
    small, _ = run("small", 2, 1)
    assert not torch.allclose(small["net.0.weight"], large["net.0.weight"])  # the comparison can tell them apart


class GroupedTask(LinearTask):
    def param_groups(self):
        return [
            {"params": self.model.net[0].parameters()},  # the config's learning rate and weight decay
            {"params": self.model.net[2].parameters(), "lr": 1e-3, "weight_decay": 0.0},
        ]


def test_each_parameter_group_follows_the_schedule_at_its_own_rate(tmp_path: Path) -> None:
    config = TrainConfig(out_dir=tmp_path, max_steps=6, batch_size=2, learning_rate=1e-2, weight_decay=0.1,
                         warmup_steps=2, checkpoint_every=4)
    run_training(GroupedTask(), config)
    optimizer = torch.load(tmp_path / "checkpoints" / "step_4" / "optimizer.bin", weights_only=True)
    groups = optimizer["param_groups"]
    progress = (4 - 2) / (6 - 2)  # cosine after the 2-step warmup
    factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 * factor, 1e-3 * factor])
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [len(g["params"]) for g in groups] == [2, 2]


def test_parameter_groups_must_hold_every_trainable_parameter() -> None:
    task = GroupedTask()
    task.param_groups = lambda: [{"params": task.model.net[0].parameters()}]  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="leaves out trainable parameters: net.2.weight, net.2.bias"):
        param_groups(task)
    task.model.net[2].requires_grad_(False)  # frozen (e.g. by train_only): no group needs it
    assert [len(g["params"]) for g in param_groups(task)] == [2]


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
