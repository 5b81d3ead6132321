"""ELSA loss terms on hand-made embeddings and head outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from soundstage.elsa_encoder import contrastive_loss, spatial_losses
from soundstage.foa import direction_vector


def test_contrastive_loss_is_low_when_aligned_and_high_when_shuffled() -> None:
    embeddings = F.normalize(torch.eye(4, 8), dim=-1)
    scale = torch.tensor(50.0)
    assert contrastive_loss(embeddings, embeddings, scale) < 1e-6
    assert contrastive_loss(embeddings, embeddings.roll(1, 0), scale) > 10.0
    uniform = contrastive_loss(embeddings, embeddings, torch.tensor(0.0))
    assert float(uniform) == pytest.approx(math.log(4))


def test_shared_captions_are_positives_not_negatives() -> None:
    audio = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    text = audio.clone()  # items 0 and 1 share one caption
    scale = torch.tensor(30.0)
    with_groups = contrastive_loss(audio, text, scale, groups=torch.tensor([0, 0, 1]))
    without = contrastive_loss(audio, text, scale)
    assert with_groups < 1e-6 < without  # without groups, the duplicate counts as a hard negative


def test_spatial_losses_use_spatial_items_only() -> None:
    azimuth, elevation = torch.tensor([90.0, float("nan")]), torch.tensor([10.0, float("nan")])
    batch = {
        "is_spatial": torch.tensor([True, False]),
        "azimuth_deg": azimuth, "elevation_deg": elevation,
        "distance_m": torch.tensor([0.5, float("nan")]),
        "floor_area_m2": torch.tensor([13.3, float("nan")]),
        "t30_s": torch.tensor([2.67, float("nan")]),
    }
    heads = {
        "direction": torch.cat([direction_vector(90.0, 10.0)[None], torch.tensor([[1.0, 0.0, 0.0]])]),
        "distance_m": torch.tensor([0.0, 5.0]),  # normalised targets: 0.5 m -> 0, 13.3 m2 -> 0, 2.67 s -> 1
        "floor_area_m2": torch.tensor([0.0, 5.0]),
        "t30_s": torch.tensor([1.0, 5.0]),
    }
    losses = spatial_losses(heads, batch)
    assert all(float(v) == pytest.approx(0.0, abs=1e-6) for v in losses.values())
    heads["direction"] = torch.cat([direction_vector(-90.0, -10.0)[None], heads["direction"][1:]])
    assert float(spatial_losses(heads, batch)["direction"]) == pytest.approx(2.0, abs=1e-5)  # opposite: 1 - cos = 2


def test_batch_without_spatial_items_gives_zero_spatial_loss() -> None:
    nan = torch.tensor([float("nan")])
    batch = {"is_spatial": torch.tensor([False]), "azimuth_deg": nan, "elevation_deg": nan, "distance_m": nan,
             "floor_area_m2": nan, "t30_s": nan}
    direction = torch.ones(1, 3, requires_grad=True)
    heads = {"direction": direction, **{k: torch.ones(1) for k in ("distance_m", "floor_area_m2", "t30_s")}}
    losses = spatial_losses(heads, batch)
    assert all(float(v.detach()) == 0.0 for v in losses.values())
    sum(losses.values()).backward()
    assert torch.equal(direction.grad, torch.zeros(1, 3))


def test_zero_shot_term_labels_and_cross_entropy() -> None:
    from soundstage.elsa_encoder import ELSAConfig, elsa_loss
    from soundstage.elsa_encoder.loss import zero_shot_labels, zero_shot_loss

    nan = float("nan")
    batch = {  # near, far, between bands (1.5 m: no distance class), non-spatial
        "azimuth_deg": torch.tensor([0.0, 90.0, 180.0, nan]), "elevation_deg": torch.tensor([0.0, 0.0, 0.0, nan]),
        "distance_m": torch.tensor([0.7, 3.0, 1.5, nan]), "floor_area_m2": torch.tensor([20.0, 200.0, 70.0, nan]),
        "t30_s": torch.tensor([0.5, 0.5, 0.5, nan]), "is_spatial": torch.tensor([True, True, True, False]),
    }
    labels = zero_shot_labels(batch, ("distance", "direction"))
    assert labels["distance"].tolist() == [0, 1, -1, -1] and labels["direction"].tolist() == [0, 1, 3, -1]
    near, far = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    prototypes = {"distance": torch.stack([near, far])}
    right = torch.stack([near, far, near, far])
    wrong = torch.stack([far, near, near, far])
    scale = torch.tensor(20.0)
    good = zero_shot_loss(right, scale, prototypes, {"distance": labels["distance"]})["distance"]
    bad = zero_shot_loss(wrong, scale, prototypes, {"distance": labels["distance"]})["distance"]
    assert float(good) < 1e-6 and float(bad) > 10.0
    output = {"audio": right, "text": right, "logit_scale": scale,
              "heads": {"direction": F.normalize(torch.ones(4, 3), dim=-1),
                        **{k: torch.zeros(4) for k in ("distance_m", "floor_area_m2", "t30_s")}}}
    off, _ = elsa_loss(output, batch, ELSAConfig(), prototypes)  # weight 0 (the default): no term
    on, logs = elsa_loss({**output, "audio": wrong}, batch, ELSAConfig(zero_shot_loss_weight=1.0), prototypes)
    assert "loss_zero_shot_distance" in logs and float(on) > float(off) + 10.0
