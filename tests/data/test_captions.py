"""Spatial caption words at every band edge of docs/conventions.md section 2, phrasings, determinism, the rephraser
hook."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from soundstage.data.captions import (
    PHRASINGS,
    Rephraser,
    direction_word,
    distance_word,
    elevation_word,
    reverb_word,
    size_word,
    spatial_caption,
    spatial_words,
)


@pytest.mark.parametrize(
    ("azimuth", "word"),
    [(0.0, "front"), (35.0, "front"), (35.1, "front left"), (54.9, "front left"), (55.0, "left"), (90.0, "left"),
     (125.0, "left"), (125.1, "back left"), (144.9, "back left"), (145.0, "back"), (179.9, "back"), (-180.0, "back"),
     (180.0, "back"), (-145.0, "back"), (-144.9, "back right"), (-125.1, "back right"), (-125.0, "right"),
     (-90.0, "right"), (-55.0, "right"), (-54.9, "front right"), (-35.1, "front right"), (-35.0, "front"),
     (395.0, "front"), (-225.0, "back left"), (215.0, "back")],
)
def test_direction_words_at_band_edges(azimuth: float, word: str) -> None:
    assert direction_word(azimuth) == word


@pytest.mark.parametrize(
    ("function", "value", "word"),
    [(elevation_word, 40.0, None), (elevation_word, 40.1, "above"), (elevation_word, -40.0, None),
     (elevation_word, -40.1, "below"), (elevation_word, 0.0, None),
     (distance_word, 0.99, "near"), (distance_word, 1.0, None), (distance_word, 2.0, None),
     (distance_word, 2.01, "far"),
     (reverb_word, 0.19, "acoustically dampened"), (reverb_word, 0.2, None), (reverb_word, 1.0, None),
     (reverb_word, 1.01, "highly reverberant"),
     (size_word, 49.9, "small"), (size_word, 50.0, "medium-sized"), (size_word, 100.0, "medium-sized"),
     (size_word, 100.1, "large")],
)
def test_attribute_words_at_band_edges(function, value: float, word: str | None) -> None:
    assert function(value) == word


def test_design_example_phrasing() -> None:
    caption = spatial_caption("A dog barks", 90.0, 0.0, 3.0, 200.0, 1.5, phrasing=1)
    assert caption == "A dog barks far to the left of a large, highly reverberant room."


def _opposite_words(direction: str) -> list[str]:
    """Direction words that must not appear in a caption for ``direction`` (e.g. "right" in a "left" caption)."""
    parts = set(direction.split())
    opposite = {"left": "right", "right": "left", "front": "back", "back": "front"}
    return [opposite[p] for p in parts]


@pytest.mark.parametrize("azimuth", [0.0, 45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0])
def test_every_phrasing_keeps_all_words(azimuth: float) -> None:
    words = spatial_words(azimuth, 45.0, 0.7, 30.0, 0.15)
    captions = {spatial_caption("A dog barks.", azimuth, 45.0, 0.7, 30.0, 0.15, rng=k, phrasing=p)
                for p in range(len(PHRASINGS)) for k in range(3)}
    for caption in captions:
        for word in words.all():
            assert word in caption.lower(), (word, caption)
        for word in _opposite_words(words.direction):
            assert word not in caption.lower(), (word, caption)
        assert "A dog barks" in caption or "a dog barks" in caption
        assert caption.endswith((".", ")")) and ".." not in caption and "  " not in caption


def test_at_least_eight_distinct_phrasings() -> None:
    captions = {spatial_caption("A door slams", -100.0, 0.0, 1.5, 70.0, 0.5, rng=0, phrasing=p)
                for p in range(len(PHRASINGS))}
    assert len(PHRASINGS) >= 8 and len(captions) == len(PHRASINGS)
    drawn = {spatial_caption("A door slams", -100.0, 0.0, 1.5, 70.0, 0.5, rng=seed) for seed in range(200)}
    assert len(drawn) >= 8


def test_captions_are_deterministic_for_a_seed() -> None:
    args = ("rain on a tin roof", 150.0, -45.0, 3.0, 150.0, 2.0)
    assert spatial_caption(*args, rng=11) == spatial_caption(*args, rng=11)
    assert spatial_caption(*args, rng=np.random.default_rng(3)) == spatial_caption(*args, rng=np.random.default_rng(3))
    assert len({spatial_caption(*args, rng=seed) for seed in range(20)}) > 1
    assert spatial_caption(*args, rng=11).startswith(("Rain", "rain", "In ", "Inside", "Recorded", "A ", "Far", "From",
                                                      "To "))


def test_acronyms_keep_their_case_inside_a_sentence() -> None:
    caption = spatial_caption("TV static hisses", 0.0, 0.0, 1.5, 70.0, 0.5, rng=0, phrasing=2)
    assert "TV static hisses" in caption


def test_rephraser_is_used_only_when_it_keeps_the_words(caplog: pytest.LogCaptureFixture) -> None:
    def keep(caption: str) -> str:
        return "Listen: " + caption

    def drop(caption: str) -> str:
        return "A dog barks somewhere."

    assert isinstance(keep, Rephraser)
    args = ("A dog barks", 90.0, 0.0, 3.0, 200.0, 1.5)
    plain = spatial_caption(*args, rng=4)
    assert spatial_caption(*args, rng=4, rephraser=keep) == "Listen: " + plain
    with caplog.at_level(logging.WARNING):
        assert spatial_caption(*args, rng=4, rephraser=drop) == plain
    assert "dropped spatial words" in caplog.text


def test_empty_caption_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        spatial_caption("  . ", 0.0, 0.0, 1.5, 70.0, 0.5)
