from __future__ import annotations

import copy
import logging
import math

import pytest
import torch

from soundstage.common.text_encoder import FrozenTextEncoder
from soundstage.conditioners import (
    DROP_KEYS,
    NUMBER_KEYS,
    ConditionBatch,
    ConditionError,
    Conditioners,
    ConditionersConfig,
)
from soundstage.elsa_encoder import ELSA, elsa_preset

FULL = {"caption": "a dog barks", "spatial_caption": "A dog barks to the left.", "azimuth_deg": 90.0,
        "elevation_deg": 10.0, "distance_m": 2.0, "floor_area_m2": 50.0, "t30_s": 0.5, "seconds": 1.5}


@pytest.fixture(scope="module", autouse=True)
def _text_model_loaded() -> None:
    """Load the bundled MiniLM once (seconds), outside the tests' own time."""
    FrozenTextEncoder("minilm", max_length=64)


@pytest.fixture(scope="module")
def elsa() -> ELSA:
    torch.manual_seed(0)
    return ELSA(elsa_preset("tiny")).eval()


@pytest.fixture
def conditioners(elsa: ELSA) -> Conditioners:
    torch.manual_seed(0)
    module = Conditioners(ConditionersConfig(cond_dim=32), max_seconds=2.0)
    module.attach_elsa(elsa)
    return module


def numbers_batch(key: str, values: list[float]) -> ConditionBatch:
    return ConditionBatch.from_records([{key: v, "seconds": 1.0} for v in values])


# ---------------------------------------------------------------- ConditionBatch
def test_from_records_missing_keys_are_not_given() -> None:
    batch = ConditionBatch.from_records([FULL, {"seconds": 2.0}])
    assert batch.semantic == ["a dog barks", None] and batch.spatial_caption[1] is None
    assert batch.numbers["azimuth_deg"][0] == 90.0
    assert all(batch.numbers[k][1].isnan() for k in NUMBER_KEYS)
    assert batch.seconds.tolist() == [1.5, 2.0]


@pytest.mark.parametrize(("record", "match"), [
    ({"azimuth_deg": math.inf}, "azimuth_deg has an infinite value"),
    ({"seconds": -math.inf}, "seconds has an infinite value"),
    ({"distance_m": 0.0}, "distance_m must be > 0"),
    ({"t30_s": -1.0}, "t30_s must be > 0"),
    ({"elevation_deg": 91.0}, r"elevation_deg must be in \[-90, 90\]"),
    ({"spatial_caption": "  "}, "spatial caption 0 is '  '"),
    ({"caption": ""}, "semantic caption 0 is ''"),
])
def test_bad_conditions_are_refused(record: dict, match: str) -> None:
    with pytest.raises(ConditionError, match=match):
        ConditionBatch.from_records([{"seconds": 1.0, **record}])


def test_mismatched_batch_is_refused() -> None:
    with pytest.raises(ConditionError, match="B entries"):
        ConditionBatch(["a"], [None, None], {k: torch.zeros(1) for k in NUMBER_KEYS}, torch.ones(1))


# ---------------------------------------------------------------- nulls: not given, dropped, unconditional
def test_null_used_when_not_given_and_when_dropped(conditioners: Conditioners) -> None:
    batch = ConditionBatch.from_records([FULL, {"seconds": math.nan}, FULL])
    drop = {key: torch.tensor([False, False, True]) for key in DROP_KEYS}
    cond = conditioners(batch, drop)
    text_tokens = cond.tokens.shape[1] - 7
    for row in (1, 2):  # row 1: nothing given; row 2: everything given, all dropped
        assert cond.mask[row, :text_tokens].tolist() == [True] + [False] * (text_tokens - 1)
        torch.testing.assert_close(cond.tokens[row, 0], conditioners.text.null)
        torch.testing.assert_close(cond.tokens[row, text_tokens], conditioners.descriptive.null)
        torch.testing.assert_close(cond.tokens[row, text_tokens + 1 : text_tokens + 6], conditioners.numbers.null)
        torch.testing.assert_close(cond.tokens[row, -1], conditioners.timing.null)
    torch.testing.assert_close(cond.tokens[1], cond.tokens[2])
    torch.testing.assert_close(cond.global_vector[1], cond.global_vector[2])
    assert cond.mask[0, :text_tokens].all()  # row 0: the full caption, no null
    assert not torch.allclose(cond.tokens[0, text_tokens:], cond.tokens[1, text_tokens:])


def test_null_like_is_the_content_free_branch(conditioners: Conditioners) -> None:
    batch = ConditionBatch.from_records([FULL])
    content = {key: torch.ones(1, dtype=torch.bool) for key in DROP_KEYS if key != "timing"}
    a, b = conditioners(batch.null_like()), conditioners(batch, content)
    torch.testing.assert_close(a.tokens, b.tokens)
    torch.testing.assert_close(a.global_vector, b.global_vector)
    assert not torch.allclose(a.tokens[0, -1], conditioners.timing.null)  # the length is kept


def test_each_number_is_droppable_alone(conditioners: Conditioners) -> None:
    batch = ConditionBatch.from_records([FULL, FULL])
    base = conditioners(batch).tokens
    for index, key in enumerate(NUMBER_KEYS):
        tokens = conditioners(batch, {key: torch.tensor([False, True])}).tokens
        changed = (tokens[1] - base[1]).abs().sum(-1) > 0
        position = base.shape[1] - 6 + index
        assert changed.nonzero().flatten().tolist() == [position]
        torch.testing.assert_close(tokens[1, position], conditioners.numbers.null[index])


def test_nulls_get_gradients_and_nan_never_leaks(conditioners: Conditioners) -> None:
    batch = ConditionBatch.from_records([FULL, {"seconds": 1.0}])
    cond = conditioners(batch)
    (cond.tokens.sum() + cond.global_vector.sum()).backward()
    for name, parameter in conditioners.named_parameters():
        assert parameter.grad is not None and parameter.grad.isfinite().all(), name
    assert conditioners.numbers.null.grad.abs().sum() > 0


# ---------------------------------------------------------------- numbers
def test_azimuth_is_periodic(conditioners: Conditioners) -> None:
    batch = numbers_batch("azimuth_deg", [179.0, -179.0, 0.0, 180.0, 1.0, -1.0, 181.0])
    tokens = conditioners(batch).tokens[:, -6]  # the azimuth token

    def dist(i: int, j: int) -> float:
        return (tokens[i] - tokens[j]).norm().item()

    torch.testing.assert_close(tokens[1], tokens[6])  # -179 == 181
    assert dist(0, 1) < 0.2 * dist(2, 3)  # 179 vs -179: neighbours; 0 vs 180: opposite
    assert 0.5 < dist(0, 1) / dist(4, 5) < 2.0  # crossing +-180 is like crossing 0


def test_number_ranges_do_not_alias(conditioners: Conditioners) -> None:
    tokens = conditioners(numbers_batch("elevation_deg", [-90.0, 90.0, 0.0])).tokens[:, -5]
    assert (tokens[0] - tokens[1]).norm() > (tokens[0] - tokens[2]).norm()


# ---------------------------------------------------------------- text and descriptive
def test_long_prompt_is_truncated_with_a_warning(conditioners: Conditioners, caplog: pytest.LogCaptureFixture) -> None:
    prompt = " ".join(["dog"] * 100)
    with caplog.at_level(logging.WARNING, logger="soundstage.conditioners.text"):
        cond = conditioners(ConditionBatch.from_records([{"caption": prompt, "seconds": 1.0}]))
    assert "limit of 64 tokens" in caplog.text
    assert cond.tokens.shape[1] == 64 + 7


def test_descriptive_needs_elsa_and_caches(elsa: ELSA) -> None:
    module = Conditioners(ConditionersConfig(cond_dim=32), max_seconds=2.0)
    batch = ConditionBatch.from_records([FULL])
    with pytest.raises(ConditionError, match="attach_elsa"):
        module(batch)
    module(ConditionBatch.from_records([{"seconds": 1.0}]))  # no spatial caption: no ELSA needed

    calls: list[list[str]] = []

    class CountingELSA:
        config = elsa.config

        def embed_text(self, texts: list[str]) -> torch.Tensor:
            calls.append(texts)
            return elsa.embed_text(texts)

        training = False

        def eval(self) -> None: ...

        def train(self, mode: bool) -> None: ...

    module.attach_elsa(CountingELSA())
    first = module(ConditionBatch.from_records([FULL, FULL])).tokens
    second = module(batch).tokens
    assert calls == [["A dog barks to the left."]]
    torch.testing.assert_close(first[0], second[0])


def test_frozen_encoders_stay_out_of_state_and_copies(conditioners: Conditioners) -> None:
    conditioners(ConditionBatch.from_records([FULL]))
    names = list(conditioners.state_dict())
    assert not [n for n in names if "encoder" in n or "elsa" in n or "embeddings" in n]
    assert sum(v.numel() for v in conditioners.state_dict().values()) < 200_000  # MiniLM alone is 22 M
    twin = copy.deepcopy(conditioners)
    assert twin.descriptive._elsa is conditioners.descriptive._elsa
    assert twin.text.encoder is conditioners.text.encoder


# ---------------------------------------------------------------- training dropout
def test_training_drop_modes_and_rates() -> None:
    config = ConditionersConfig(cond_dim=8)
    module = Conditioners(config, max_seconds=2.0)
    drop = module.training_drop(40_000, torch.Generator().manual_seed(0))
    assert set(drop) == set(DROP_KEYS) and all(v.shape == (40_000,) and v.dtype == torch.bool for v in drop.values())
    numbers = torch.stack([drop[k] for k in NUMBER_KEYS]).all(0)
    content_free = drop["text"] & drop["descriptive"] & numbers
    descriptive_only = drop["text"] & numbers & ~drop["descriptive"]
    parametric = ~drop["text"] & drop["descriptive"]
    assert abs(content_free.float().mean() - 0.1 - 0.3 * 0.1) < 0.01
    assert abs(descriptive_only.float().mean() - 0.3 * 0.9) < 0.01
    assert abs(parametric.float().mean() - (0.3 + 0.3 * 0.1) * 0.9) < 0.01  # parametric mode, or both + dropout
    assert abs(drop["timing"].float().mean() - config.timing_dropout) < 0.01
    # numbers drop independently outside the mode draw
    both = ~drop["text"] & ~drop["descriptive"]
    rates = [drop[k][both].float().mean().item() for k in NUMBER_KEYS]
    assert all(abs(r - config.number_dropout) < 0.02 for r in rates)
    again = module.training_drop(40_000, torch.Generator().manual_seed(0))
    assert all(torch.equal(drop[k], again[k]) for k in DROP_KEYS)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="must be in"):
        ConditionersConfig(text_dropout=1.5)
    with pytest.raises(ValueError, match="exclude each other"):
        ConditionersConfig(parametric_only=0.6, descriptive_only=0.6)
