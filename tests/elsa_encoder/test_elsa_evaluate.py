"""ELSA evaluation: the report on a tiny model, the embedding edits, localization errors and the probes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soundstage.common.audio import load_audio
from soundstage.data.captions import DIRECTION_WORDS
from soundstage.data.manifest import read_manifest
from soundstage.elsa_encoder import ELSA, elsa_preset
from soundstage.elsa_encoder.evaluate import direction_edit_projection, evaluate_elsa, swap_direction
from soundstage.elsa_encoder.probes import ATTRIBUTE_CLASSES, attribute_label, probe_texts
from soundstage.foa import broadband_doa, direction_vector, great_circle_deg, vector_to_angles

from .synthetic import make_elsa_dataset


class DOAOracle(ELSA):
    """ELSA with exact physics for towers: an audio embedding is the clip's broadband DOA (unit x, y, z), a text
    embedding the direction of its direction word (a fourth axis for texts without one), and the heads read the
    direction back. Evaluating it has known answers."""

    def embed_audio(self, foa: torch.Tensor, sample_rate: int) -> torch.Tensor:
        azimuth, elevation = broadband_doa(self.prepare_audio(foa, sample_rate))
        return self._pad(direction_vector(azimuth, elevation))

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            plain = " " + re.sub(r"[^a-z]+", " ", text.lower()) + " "
            words = [w for w in DIRECTION_WORDS if f" {w} " in plain]
            word = max(words, key=len) if words else None
            rows.append(torch.tensor([0.0, 0.0, 0.0, 1.0]) if word is None else
                        F.pad(direction_vector(_WORD_AZIMUTH[word], 0.0), (0, 1)))
        return self._pad(torch.stack(rows))

    def spatial_from_embedding(self, audio_embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        azimuth, elevation = vector_to_angles(audio_embedding[:, :3])
        constant = torch.ones(len(audio_embedding))
        return {"azimuth_deg": azimuth, "elevation_deg": elevation, "distance_m": 2.0 * constant,
                "floor_area_m2": 50.0 * constant, "t30_s": 0.5 * constant}

    def _pad(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.pad(vectors, (0, self.config.embed_dim - vectors.shape[-1])), dim=-1)


_WORD_AZIMUTH = {"front": 0.0, "front left": 45.0, "left": 90.0, "back left": 135.0, "back": 180.0,
                 "back right": -135.0, "right": -90.0, "front right": -45.0}


def test_evaluation_of_an_exact_model_gives_the_known_answers(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # One test clip per direction class (front, left, right, back), each with its own caption.
    data = make_elsa_dataset(tmp_path / "data", clips={"train": 8, "test": 4}, azimuths=(0.0, 90.0, -90.0, 180.0))
    results = evaluate_elsa(DOAOracle(elsa_preset("tiny")), data, split="test", out_dir=tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "elsa_eval.json").read_text()) == json.loads(json.dumps(results))
    for name in ("zero_shot_confusion.png", "embedding_map.png", "localization.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 1000
    # Each spatial caption names one clip's direction and no other's: both ways, that clip ranks first.
    spatial = results["retrieval"]["spatial_captions"]
    assert spatial["text_to_audio"]["R@1"] == 1.0 and spatial["audio_to_text"]["R@1"] == 1.0
    direction = results["zero_shot"]["direction"]
    assert direction["clips"] == 4 and direction["accuracy"] == 1.0
    assert direction["confusion"] == np.diag([1, 1, 1, 1]).tolist()
    # The heads read back each clip's broadband DOA: their error is the DOA's error against the label.
    records = read_manifest(data)
    errors = [great_circle_deg(*broadband_doa(load_audio(data / r["path"])[0]), r["azimuth_deg"], r["elevation_deg"])
              for r in records if r["split"] == "test"]
    assert results["localization"]["angle_error_median_deg"] == pytest.approx(float(np.median(errors)), abs=1e-3)
    assert results["localization"]["angle_error_median_deg"] < 10.0
    assert "great-circle error" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_runs_a_real_model_end_to_end(tiny_elsa: ELSA, elsa_data: Path, tmp_path: Path) -> None:
    results = evaluate_elsa(tiny_elsa, elsa_data, split="test", out_dir=tmp_path)
    assert results["clips"] == 4 and set(results["zero_shot"]) == set(ATTRIBUTE_CLASSES)
    for block in results["retrieval"].values():
        for metrics in (block["text_to_audio"], block["audio_to_text"]):
            assert 0.0 <= metrics["R@1"] <= metrics["R@5"] <= metrics["R@10"] <= 1.0
    assert "swap_accuracy" in results["direction_swap"]["elsa"]


def test_elsa_swap_is_arithmetic_and_salm_replaces_the_spatial_part() -> None:
    prototypes = torch.eye(4, 8)
    audio = F.normalize(torch.tensor([[1.0, 0, 0, 0, 1.0, 0, 0, 0]]), dim=-1)
    elsa = swap_direction(audio, prototypes, np.array([0]), np.array([2]), "elsa")
    torch.testing.assert_close(elsa, F.normalize(audio - prototypes[0] + prototypes[2], dim=-1))
    projection = direction_edit_projection(prototypes)
    torch.testing.assert_close(projection @ projection, projection, atol=1e-6, rtol=1e-5)  # a projection
    salm = swap_direction(audio, prototypes, np.array([0]), np.array([2]), "salm")
    # The non-spatial component (dimension 4) is kept; the spatial part now matches the target's.
    assert salm[0, 4] > 0 and salm[0, 2] > salm[0, 0]
    with pytest.raises(ValueError, match="unknown edit"):
        swap_direction(audio, prototypes, np.array([0]), np.array([1]), "other")


def test_probe_classes_follow_the_caption_words() -> None:
    labels = {"azimuth_deg": 90.0, "elevation_deg": 45.0, "distance_m": 0.7, "floor_area_m2": 75.0, "t30_s": 1.5}
    assert attribute_label("direction", labels) == ATTRIBUTE_CLASSES["direction"].index("left")
    assert attribute_label("elevation", labels) == ATTRIBUTE_CLASSES["elevation"].index("above")
    assert attribute_label("distance", labels) == ATTRIBUTE_CLASSES["distance"].index("near")
    assert attribute_label("room_size", labels) == -1  # medium-sized has no class
    assert attribute_label("direction", {**labels, "azimuth_deg": 45.0}) == -1  # front left: between classes
    assert attribute_label("direction", {**labels, "azimuth_deg": float("nan")}) == -1
    probes = probe_texts("direction")
    assert all(any(word in text for text in texts) for word, texts in probes.items())
    assert all(" left" not in text for text in probes["right"])
