"""`soundstage train`: the preset's loop values and the flags make the TrainConfig, and no key is dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundstage import cli
from soundstage.train import codec_task, elsa_task


def _captured_config(monkeypatch: pytest.MonkeyPatch, argv: list[str]):
    seen = {}

    def fake_make(preset, data, config, **options):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(codec_task, "make_codec_task", fake_make)
    monkeypatch.setattr(elsa_task, "make_elsa_task", fake_make)
    with pytest.raises(SystemExit):
        cli.main(argv)
    return seen["config"]


def test_flags_override_the_preset_s_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run = ["train", "elsa", "--preset", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    config = _captured_config(monkeypatch, [*run, "--steps", "7", "--grad-accum", "3", "--lr", "0.5"])
    assert (config.max_steps, config.gradient_accumulation_steps, config.learning_rate) == (7, 3, 0.5)
    assert config.ema_decay == elsa_task.ELSA_TRAIN_DEFAULTS["tiny"]["ema_decay"]  # the rest from the preset
    assert _captured_config(monkeypatch, [*run, "--ema-decay", "0.99"]).ema_decay == 0.99
    assert config.out_dir == tmp_path / "run"


def test_an_unknown_preset_key_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(codec_task.CODEC_TRAIN_DEFAULTS, "tiny", {"max_steps": 2, "crop_seconds": 0.5})
    # a preset that does not fit TrainConfig is a bug, reported as one (exit 1), not as the user's error
    assert cli.main(["train", "codec", "--preset", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "internal error (TypeError:" in err and "crop_seconds" in err and "--debug" in err
