"""DiT training task: a few steps of the tiny DiT on latents of the bundled codec export a loadable DiT that records
the codec's fingerprint; validation is deterministic; kill-and-resume gives identical weights; latents of another
codec, or a config naming one, are refused; the command line trains it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from soundstage.cli import main
from soundstage.codec import CODEC_PRESETS, FOACodec, codec_fingerprint
from soundstage.data.latents import LatentFolderError
from soundstage.dit import SpatialDiT, dit_preset
from soundstage.train.dit_task import DIT_TRAIN_DEFAULTS, DITTask, make_dit_task
from soundstage.train.latents import encode_latents
from soundstage.train.trainer import TrainConfig, latest_checkpoint, run_training
from tests.codec.synthetic import make_dataset


@pytest.fixture(scope="module")
def latents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dit_data")
    data = make_dataset(root / "foa", sample_rate=24000, clips={"train": 4, "valid": 2}, seconds=1.0)
    encode_latents(FOACodec.from_pretrained("small"), data, root / "latents", rotations=2, progress=False)
    return root / "latents"


def crash_at(task: DITTask, step: int) -> DITTask:
    """The task, dying at ``step`` like a kill after the last checkpoint (every other method kept)."""
    train_step = task.training_step

    def training_step(model, batch, at: int):
        if at == step:
            raise KeyboardInterrupt
        return train_step(model, batch, at)

    task.training_step = training_step  # type: ignore[method-assign]
    return task


def _config(out: Path, steps: int) -> TrainConfig:
    values = dict(DIT_TRAIN_DEFAULTS["tiny"])
    values.update(max_steps=steps, checkpoint_every=2, validate_every=100)
    return TrainConfig(out_dir=out, **values)


def test_a_few_steps_export_a_loadable_dit_with_the_codecs_fingerprint(latents: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "run", 3)
    task = make_dit_task("tiny", latents, config)
    exported = run_training(task, config)
    dit = SpatialDiT.from_pretrained(exported)
    assert dit.config.codec_fingerprint == codec_fingerprint(FOACodec.from_pretrained("small"))
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    valid = [r["valid"] for r in log if "valid" in r][-1]
    assert 0 <= valid["direction_error_median_deg"] <= 180 and valid["generated_w_rms"] > 0
    assert valid["flow_loss"] == pytest.approx((valid["flow_loss_parametric"] + valid["flow_loss_descriptive"]) / 2)
    dit.attach_elsa(task.elsa)
    with torch.no_grad():
        again = task.validate(dit, 3, None)
    assert again["flow_loss_parametric"] == valid["flow_loss_parametric"]  # fixed items, t and noise
    assert again["direction_error_median_deg"] == pytest.approx(valid["direction_error_median_deg"], abs=1e-4)


def test_kill_and_resume_gives_identical_weights(latents: Path, tmp_path: Path) -> None:
    straight = run_training(make_dit_task("tiny", latents, _config(tmp_path / "a", 4)), _config(tmp_path / "a", 4))
    config = _config(tmp_path / "b", 4)
    with pytest.raises(KeyboardInterrupt):
        run_training(crash_at(make_dit_task("tiny", latents, config), 2), config)
    assert latest_checkpoint(tmp_path / "b").name == "step_2"
    resumed = run_training(make_dit_task("tiny", latents, config), config, resume=True)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_another_codec_or_a_config_naming_one_is_refused(latents: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "run", 1)
    other = FOACodec(dataclasses.replace(CODEC_PRESETS["small"], dim=32)).save_pretrained(tmp_path / "codec")
    with pytest.raises(LatentFolderError) as refusal:
        make_dit_task("tiny", latents, config, codec=other)
    ours = codec_fingerprint(FOACodec.from_pretrained("small"))
    assert ours in str(refusal.value) and codec_fingerprint(FOACodec.from_pretrained(other)) in str(refusal.value)
    with pytest.raises(LatentFolderError, match=f"names codec 0123456789abcdef, .* by codec {ours}"):
        make_dit_task("tiny", latents, config,
                      model_config=dataclasses.replace(dit_preset("tiny"), codec_fingerprint="0123456789abcdef"))
    with pytest.raises(LatentFolderError, match="16-channel latents at 24000 Hz, hop 512"):
        make_dit_task("tiny", latents, config, model_config=dataclasses.replace(dit_preset("tiny"), latent_channels=8))


def test_command_line_trains_a_dit(latents: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "dit", "--preset", "tiny", "--data", str(latents), "--out", str(tmp_path / "run"),
                 "--steps", "1"]) == 0
    assert "exported EMA weights" in capsys.readouterr().out
    assert SpatialDiT.from_pretrained(tmp_path / "run" / "model").config.codec_fingerprint
