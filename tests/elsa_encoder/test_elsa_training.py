"""ELSA through the shared training loop: a smoke run, exact resume, and the cached training items."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from soundstage.data.captions import direction_word
from soundstage.elsa_encoder import ELSA
from soundstage.train.elsa_task import ELSA_TRAIN_DEFAULTS, make_elsa_task
from soundstage.train.trainer import TrainConfig, run_training


def _config(out: Path, steps: int, validate_every: int = 2) -> TrainConfig:
    values = {**ELSA_TRAIN_DEFAULTS["tiny"], "max_steps": steps, "batch_size": 4, "checkpoint_every": 2,
              "validate_every": validate_every, "log_every": 1}
    return TrainConfig(out_dir=out, **values)


def test_two_steps_train_validate_and_export(elsa_data: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "run", 2)
    task = make_elsa_task("tiny", elsa_data, config, cache_dir=tmp_path / "cache")
    exported = run_training(task, config)
    model = ELSA.from_pretrained(exported)
    assert model.embed_text(["a low rumble"]).shape == (1, 512)
    log = (tmp_path / "run" / "train_log.jsonl").read_text()
    assert "contrastive" in log and "zero_shot_direction" in log and "t2a_R@10" in log


def test_resume_matches_an_uninterrupted_run(elsa_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # features are computed once and shared by the three runs
    straight = run_training(make_elsa_task("tiny", elsa_data, _config(tmp_path / "a", 4, 100), cache_dir=cache),
                            _config(tmp_path / "a", 4, 100))

    crashing = make_elsa_task("tiny", elsa_data, _config(tmp_path / "b", 4, 100), cache_dir=cache)
    step_fn = crashing.training_step

    def crash_at_three(model, batch, step):
        if step == 3:
            raise KeyboardInterrupt  # stands in for a kill after the step-2 checkpoint
        return step_fn(model, batch, step)

    crashing.training_step = crash_at_three  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run_training(crashing, _config(tmp_path / "b", 4, 100))
    resumed = run_training(make_elsa_task("tiny", elsa_data, _config(tmp_path / "b", 4, 100), cache_dir=cache),
                           _config(tmp_path / "b", 4, 100), resume=True)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_items_are_reproducible_multi_view_rotated_and_mixed(elsa_data: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "run", 2)
    task = make_elsa_task("tiny", elsa_data, config, cache_dir=tmp_path / "cache")
    dataset = task.train_dataset
    first, again = dataset[5], dataset[5]
    assert torch.equal(first["logmel"], again["logmel"]) and first["caption"] == again["caption"]
    assert first["logmel"].shape == (3, 16, dataset.crop_frames) and first["text_features"].shape == (3, 384)
    # Views 0 and 1: the same crop turned by different quarter turns, so the captions differ in direction only.
    centred = first["logmel"] - first["logmel"].mean(dim=(1, 2), keepdim=True)  # views differ by a random gain
    torch.testing.assert_close(centred[0], centred[1])
    assert bool(first["is_spatial"][1]) and bool(first["is_spatial"][2])
    assert first["caption"][0] != first["caption"][1]
    views = [dataset[i] for i in range(40)]
    batch = task.collate(views[:4])
    assert batch["logmel"].shape[0] == 12 and len(batch["caption"]) == 12
    plain = [(v["intensity"][0], v["azimuth_deg"][0]) for v in views if not bool(v["is_spatial"][0])]
    assert plain and all(torch.all(i == 0) and math.isnan(float(a)) for i, a in plain)
    for v in views:  # every spatial caption names the direction of its (rotated) azimuth label
        for k in range(3):
            if bool(v["is_spatial"][k]):
                assert direction_word(float(v["azimuth_deg"][k])) in v["caption"][k]
    records = dataset.features.records
    azimuths = {round(r["azimuth_deg"], 3) for r in records}
    assert any(round(float(v["azimuth_deg"][1]), 3) not in azimuths for v in views)  # quarter turns happen


def test_zero_shot_term_trains_audio_towards_fixed_prototypes(elsa_data: Path, tmp_path: Path) -> None:
    from soundstage.elsa_encoder import elsa_preset
    from soundstage.elsa_encoder.probes import class_prototypes

    config = _config(tmp_path / "run", 1)
    model_config = elsa_preset("tiny", zero_shot_loss_weight=1.0, zero_shot_attributes=("distance", "direction"))
    task = make_elsa_task("tiny", elsa_data, config, model_config=model_config, cache_dir=tmp_path / "cache")
    task.model.train()
    prototypes = task.zero_shot_prototypes(task.model)
    assert task.model.training  # the prototypes are made in eval mode and the mode is restored
    assert set(prototypes) == {"distance", "direction"}
    torch.testing.assert_close(prototypes["distance"], class_prototypes(task.model, "distance"))
    batch = task.collate([task.train_dataset[i] for i in range(4)])
    loss, logs = task.training_step(task.model, batch, 0)
    assert "loss_zero_shot_distance" in logs and "loss_zero_shot_direction" in logs
    assert not prototypes["distance"].requires_grad  # the term moves the audio branch, never the prototypes
    loss.backward()
    assert task.model.audio_projection[0].weight.grad.abs().sum() > 0
