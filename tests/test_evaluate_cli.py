"""`soundstage evaluate codec|elsa`: each file written is named on its own line; ELSA's long loops show progress."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from soundstage.cli import main
from soundstage.codec import evaluate as codec_evaluate
from soundstage.elsa_encoder import ELSA, elsa_preset
from tests.elsa_encoder.synthetic import make_elsa_dataset
from tests.elsa_encoder.test_elsa_evaluate import DOAOracle


class _IdentityCodec:
    sample_rate, hop = 16000, 512

    def encode(self, foa: torch.Tensor) -> torch.Tensor:
        return foa

    def decode(self, latent: torch.Tensor, length: int) -> torch.Tensor:
        return latent[..., :length]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_elsa_dataset(tmp_path_factory.mktemp("data"), clips={"train": 8, "test": 4},
                             azimuths=(0.0, 90.0, -90.0, 180.0))


def _wrote(stdout: str) -> list[str]:
    return [line.removeprefix("wrote ") for line in stdout.splitlines() if line.startswith("wrote ")]


def test_evaluate_codec_names_the_files_it_wrote(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(codec_evaluate.FOACodec, "from_pretrained", lambda *a, **k: _IdentityCodec())
    out = tmp_path / "eval" / "codec.json"
    assert main(["evaluate", "codec", "--model", "fake", "--data", str(data), "--out", str(out)]) == 0
    assert _wrote(capsys.readouterr().out) == [str(out), str(out.with_suffix(".png"))]
    assert out.exists() and out.with_suffix(".png").exists()


def test_evaluate_elsa_shows_progress_and_names_the_files_it_wrote(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ELSA, "from_pretrained", classmethod(lambda cls, *a, **k: DOAOracle(elsa_preset("tiny"))))
    out = tmp_path / "eval"
    assert main(["evaluate", "elsa", "--data", str(data), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    names = ["elsa_eval.json", "zero_shot_confusion.png", "embedding_map.png", "localization.png"]
    assert _wrote(captured.out) == [str(out / name) for name in names]
    assert all((out / name).exists() for name in names)
    for bar in ("embed test clips: 100%", "embed train clips (swap classifier): 100%", "embed captions: 100%"):
        assert bar in captured.err
