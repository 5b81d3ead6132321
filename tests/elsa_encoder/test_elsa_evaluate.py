"""ELSA evaluation: the report on a tiny model, the embedding edits, localization errors and the probes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soundstage.elsa_encoder import ELSA
from soundstage.elsa_encoder.evaluate import direction_edit_projection, evaluate_elsa, swap_direction
from soundstage.elsa_encoder.probes import ATTRIBUTE_CLASSES, attribute_label, probe_texts


def test_evaluate_writes_table_json_and_plots(tiny_elsa: ELSA, elsa_data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    results = evaluate_elsa(tiny_elsa, elsa_data, split="test", out_dir=tmp_path)
    assert json.loads((tmp_path / "elsa_eval.json").read_text())["clips"] == 4
    for name in ("zero_shot_confusion.png", "embedding_map.png", "localization.png"):
        assert (tmp_path / name).stat().st_size > 1000
    for captions in ("spatial_captions", "nonspatial_captions"):
        for direction in ("text_to_audio", "audio_to_text"):
            metrics = results["retrieval"][captions][direction]
            assert set(metrics) == {"R@1", "R@5", "R@10", "mAP@10"}
            assert metrics["R@10"] == 1.0  # only 4 clips: every caption is in the top 10
    assert set(results["zero_shot"]) == set(ATTRIBUTE_CLASSES)
    assert results["localization"]["angle_error_median_deg"] >= 0
    swap = results["direction_swap"]
    assert "skipped" in swap or 0.0 <= swap["elsa"]["swap_accuracy"] <= 1.0
    assert "great-circle error" in capsys.readouterr().out


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
