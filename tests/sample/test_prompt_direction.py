"""Direction words in a descriptive prompt: every caption the dataset writes parses back to its word's direction,
everyday forms parse, non-spatial uses of "left"/"right" and ambiguous prompts fix nothing; the request locks only
an unambiguous direction."""

from __future__ import annotations

import pytest

from soundstage.data.captions import DIRECTION_WORDS, PHRASINGS, SpatialWords, caption_from_words
from soundstage.sample.prompt_direction import ELEVATION_DEG, direction_from_prompt
from soundstage.sample.request import GenerationRequest

WORD_AZIMUTH = {"front": 0.0, "front left": 45.0, "left": 90.0, "back left": 135.0, "back": 180.0,
                "back right": -135.0, "right": -90.0, "front right": -45.0}


@pytest.mark.parametrize("direction", DIRECTION_WORDS)
@pytest.mark.parametrize(("elevation", "elevation_deg"), [(None, 0.0), ("above", ELEVATION_DEG),
                                                          ("below", -ELEVATION_DEG)])
def test_every_dataset_caption_parses_back_to_its_words(direction: str, elevation: str | None,
                                                        elevation_deg: float) -> None:
    for distance in (None, "near", "far"):
        words = SpatialWords(direction=direction, elevation=elevation, distance=distance, reverb=None, size="large")
        for phrasing in range(len(PHRASINGS)):
            for seed in range(4):
                caption = caption_from_words("A dog barks", words, rng=seed, phrasing=phrasing)
                found = direction_from_prompt(caption)
                assert (found.azimuth_deg, found.elevation_deg) == (WORD_AZIMUTH[direction], elevation_deg), caption


@pytest.mark.parametrize(("prompt", "azimuth", "elevation"), [
    ("a dog barks on the left", 90.0, 0.0),
    ("Footsteps behind me", 180.0, 0.0),
    ("a car horn to my right", -90.0, 0.0),
    ("a voice straight ahead", 0.0, 0.0),
    ("a fan in front of the listener", 0.0, 0.0),
    ("a clock ticking on the left-hand side", 90.0, 0.0),
    ("a door behind you on the right", -135.0, 0.0),
    ("a helicopter overhead, front-left", 45.0, ELEVATION_DEG),
    ("water dripping BELOW, to the rear left", 135.0, -ELEVATION_DEG),
])
def test_everyday_phrases(prompt: str, azimuth: float, elevation: float) -> None:
    found = direction_from_prompt(prompt)
    assert found.lockable and (found.azimuth_deg, found.elevation_deg) == (azimuth, elevation)


@pytest.mark.parametrize(("prompt", "phrases"), [
    ("the right tool for the job", ()),
    ("a dog left alone howls", ()),
    ("a car passes from the left to the right", ("from the left", "to the right")),
    ("a bird sings above", ("above",)),
    ("thunder above and rain below on the left", ("on the left", "above", "below")),
])
def test_no_single_direction_locks_nothing(prompt: str, phrases: tuple[str, ...]) -> None:
    found = direction_from_prompt(prompt)
    assert not found.lockable and found.phrases == phrases
    assert found.describe() == ("the prompt names no direction" if not phrases else
                                ", ".join(f"'{p}'" for p in phrases) + ": no single direction")


def test_the_request_locks_the_prompts_direction_in_descriptive_mode_only_when_asked() -> None:
    def request(prompt: str, **kw) -> GenerationRequest:
        return GenerationRequest(prompt=prompt, seconds=2.0, steps=4, cfg_scale=3.0, **kw)

    left = request("a dog barks on the left")
    assert left.mode == "descriptive" and left.locks_direction and left.target_direction == (90.0, 0.0)
    assert left.direction is None  # the DiT's numeric conditions stay empty in descriptive mode
    off = request("a dog barks on the left", direction_lock=False)
    assert not off.locks_direction and off.target_direction == (90.0, 0.0)  # still reported next to the measured
    assert not request("a dog barks").locks_direction and request("a dog barks").target_direction is None
    numbers = request("a dog barks on the left", azimuth_deg=-30.0)  # numbers make it parametric: they win
    assert numbers.mode == "parametric" and numbers.target_direction == (-30.0, 0.0)
