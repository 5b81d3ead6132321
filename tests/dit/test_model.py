from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from soundstage.common.pretrained import FormatError
from soundstage.conditioners import ConditionBatch, Conditioning
from soundstage.dit import DIT_PRESETS, DiTConfig, SpatialDiT, dit_preset
from soundstage.elsa_encoder import ELSA, elsa_preset

RECORDS = [{"caption": "a dog barks", "azimuth_deg": 90.0, "seconds": 0.5},
           {"caption": "rain on a roof", "t30_s": 1.2, "seconds": 0.3}]


def randomised(model: SpatialDiT) -> SpatialDiT:
    """Replace the zero initialisation so that outputs depend on every input."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def cond() -> Conditioning:
    torch.manual_seed(0)
    return SpatialDiT(dit_preset("tiny")).conditioners(ConditionBatch.from_records(RECORDS))


def test_zero_output_at_init_and_shapes(cond: Conditioning) -> None:
    model = SpatialDiT(dit_preset("tiny"))
    for length in (1, 17, 40):
        v = model(torch.randn(2, 16, length), torch.rand(2), model.conditioners(ConditionBatch.from_records(RECORDS)))
        assert v.shape == (2, 16, length) and torch.equal(v, torch.zeros_like(v))


def test_padded_frames_do_not_change_valid_ones() -> None:
    model = randomised(SpatialDiT(dit_preset("tiny")))
    cond = model.conditioners(ConditionBatch.from_records(RECORDS))
    x, t = torch.randn(2, 16, 24), torch.tensor([0.3, 0.8])
    lengths = [24, 15]
    mask = torch.arange(24) < torch.tensor(lengths).unsqueeze(1)
    padded = x.clone()
    padded[1, :, 15:] = 100.0  # garbage in the padding
    v = model(padded, t, cond, mask)
    assert torch.equal(v[1, :, 15:], torch.zeros(16, 9))
    alone = model(x[1:, :, :15], t[1:], Conditioning(cond.tokens[1:], cond.mask[1:], cond.global_vector[1:]))
    torch.testing.assert_close(v[1, :, :15], alone[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(v[0], v[1, :, :].new_zeros(16, 24))


def test_output_depends_on_time_condition_and_position() -> None:
    model = randomised(SpatialDiT(dit_preset("tiny")))
    cond = model.conditioners(ConditionBatch.from_records(RECORDS))
    x = torch.randn(1, 16, 8).expand(2, 16, 8)
    v = model(x, torch.tensor([0.5, 0.5]), cond)
    assert not torch.allclose(v[0], v[1])  # different conditions
    same = Conditioning(cond.tokens[:1].expand(2, -1, -1), cond.mask[:1].expand(2, -1), cond.global_vector[:1].expand(2, -1))
    v = model(x, torch.tensor([0.2, 0.9]), same)
    assert not torch.allclose(v[0], v[1])  # different times
    # without positions every part of the model treats frames as a set (permuting them permutes the output);
    # rotary positions make order matter
    one = Conditioning(*(a[:1] for a in (cond.tokens, cond.mask, cond.global_vector)))
    frames, order = torch.randn(1, 16, 8), torch.tensor([3, 1, 7, 0, 5, 2, 6, 4])
    v, permuted = model(frames, torch.tensor([0.5]), one), model(frames[:, :, order], torch.tensor([0.5]), one)
    assert (permuted - v[:, :, order]).abs().max() > 0.1 * v.abs().max()


def test_round_trip_keeps_nested_config_and_excludes_frozen_encoders(tmp_path: Path) -> None:
    config = dit_preset("tiny")
    config.codec_fingerprint = "0123456789abcdef"
    config.conditioners.number_dropout = 0.5
    model = randomised(SpatialDiT(config))
    torch.manual_seed(0)
    model.attach_elsa(ELSA(elsa_preset("tiny")).eval())
    batch = ConditionBatch.from_records([{**RECORDS[0], "spatial_caption": "A dog barks on the left."}])
    x, t = torch.randn(1, 16, 10), torch.tensor([0.4])
    expected = model(x, t, model.conditioners(batch))

    model.save_pretrained(tmp_path / "dit")
    state = load_file(str(tmp_path / "dit" / "model.safetensors"))
    assert not [k for k in state if "encoder" in k or "elsa" in k or "word_embeddings" in k]
    assert sum(v.numel() for v in state.values()) == model.num_parameters() < 1_000_000  # MiniLM alone is 22 M

    loaded = SpatialDiT.from_pretrained(tmp_path)  # a generation folder holding dit/
    assert loaded.config == config and loaded.config.conditioners.number_dropout == 0.5
    loaded.attach_elsa(model.conditioners.descriptive._elsa.model)
    torch.testing.assert_close(loaded(x, t, loaded.conditioners(batch)), expected)


def test_ema_copy_shares_frozen_encoders() -> None:
    model = SpatialDiT(dit_preset("tiny"))
    elsa = ELSA(elsa_preset("tiny"))
    model.attach_elsa(elsa)
    assert copy.deepcopy(model).conditioners.descriptive._elsa.model is elsa


def test_param_groups_cover_everything_and_spare_norms_and_nulls() -> None:
    model = SpatialDiT(dit_preset("tiny"))
    decay, no_decay = model.param_groups(0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    spared = {names[id(p)] for p in no_decay["params"]}
    assert "conditioners.text.null" in spared and "conditioners.numbers.null" in spared
    assert "blocks.0.norm2.weight" in spared and "proj_in.bias" in spared
    assert all(p.ndim >= 2 for p in decay["params"])


def test_config_validation_and_presets() -> None:
    with pytest.raises(ValueError, match="dim / heads"):
        DiTConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        DiTConfig(depth=0)
    with pytest.raises(KeyError, match="unknown DiT preset"):
        dit_preset("huge")
    assert set(DIT_PRESETS) == {"tiny", "small", "paper"}
    assert dit_preset("tiny") == DIT_PRESETS["tiny"] and dit_preset("tiny") is not DIT_PRESETS["tiny"]
    small = SpatialDiT(dit_preset("small"))
    assert 6e6 <= small.num_parameters() <= 10e6 and small.num_parameters() * 4 <= 40e6
    assert small.max_frames == math.ceil(8.0 * 24000 / 512) == 375
    paper = DIT_PRESETS["paper"]
    assert (paper.sample_rate, paper.hop, paper.latent_channels, paper.dim, paper.depth) == (48000, 2048, 64, 1024, 24)


def test_wrong_latent_width_is_refused(cond: Conditioning) -> None:
    with pytest.raises(ValueError, match="expected 16 latent channels"):
        SpatialDiT(dit_preset("tiny"))(torch.randn(2, 8, 4), torch.rand(2), cond)


def test_a_fine_tune_may_change_the_mode_split_but_not_the_architecture(tmp_path: Path) -> None:
    trained = randomised(SpatialDiT(dit_preset("tiny")))
    trained.save_pretrained(tmp_path / "trained")
    config = dit_preset("tiny")
    config.conditioners.descriptive_only, config.conditioners.parametric_only = 0.6, 0.15
    descriptive = SpatialDiT(config)
    descriptive.init_from_pretrained(tmp_path / "trained")
    assert all(torch.equal(a, b) for a, b in zip(descriptive.state_dict().values(), trained.state_dict().values()))
    assert (descriptive.config.conditioners.descriptive_only, descriptive.config.conditioners.parametric_only) == (
        0.6, 0.15)  # the fine-tune's split, in the config its export will save
    wider = dit_preset("tiny")
    wider.dim = 64
    with pytest.raises(FormatError, match="different config.*dim"):
        SpatialDiT(wider).init_from_pretrained(tmp_path / "trained")
