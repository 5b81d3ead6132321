"""Spatial captions: attribute values -> ELSA's words -> natural sentences around a semantic caption.

The words are exactly those of docs/conventions.md §2 (azimuth +90 = left): a direction word or one of the in-between
words always; "above"/"below", "near"/"far", "highly reverberant"/"acoustically dampened" only outside their middle
bands; a room size always ("small", "medium-sized", "large").

:func:`spatial_caption` joins a semantic caption ("A dog barks") with these words in one of ``len(PHRASINGS)``
phrasings, chosen by a seeded generator, e.g. "A dog barks far to the left of a large, highly reverberant room.".
Every phrasing keeps each word verbatim (up to a capital at the start of the sentence), so a caption can be checked
(and parsed) for them.

An optional :class:`Rephraser` (any ``str -> str`` callable, e.g. a local LLM) may rewrite the templated caption;
it is off by default, nothing here reaches a network, and a rewrite that drops a spatial word is rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from soundstage.foa import wrap_degrees

logger = logging.getLogger(__name__)

DIRECTION_WORDS = ("front", "front left", "left", "back left", "back", "back right", "right", "front right")
ELEVATION_WORDS = ("above", "below")
DISTANCE_WORDS = ("near", "far")
REVERB_WORDS = ("highly reverberant", "acoustically dampened")
SIZE_WORDS = ("small", "medium-sized", "large")


@runtime_checkable
class Rephraser(Protocol):
    """Rewrites a caption into another natural sentence with the same meaning (``str -> str``).

    Pass one to :func:`spatial_caption` to diversify captions beyond the templates, e.g. a wrapper around a local
    instruction-tuned LLM. It must keep the spatial words (front left, far, large, ...) verbatim; a rewrite that
    drops one is discarded with a warning and the templated caption is used. It must be deterministic if dataset
    builds are to be reproducible, and must not reach a network at run time (docs/conventions.md section 5).
    """

    def __call__(self, caption: str) -> str: ...


# ----------------------------------------------------------------------------------------------------------------
# Attribute -> words
# ----------------------------------------------------------------------------------------------------------------


def direction_word(azimuth_deg: float) -> str:
    """One of the 8 direction words for an azimuth in degrees (0 = front, +90 = left)."""
    az = wrap_degrees(float(azimuth_deg))
    if abs(az) <= 35.0:
        return "front"
    if abs(az) >= 145.0:
        return "back"
    if 55.0 <= az <= 125.0:
        return "left"
    if -125.0 <= az <= -55.0:
        return "right"
    if az > 0.0:
        return "front left" if az < 55.0 else "back left"
    return "front right" if az > -55.0 else "back right"


def elevation_word(elevation_deg: float) -> str | None:
    """"above" (> 40 deg), "below" (< -40 deg) or None."""
    if elevation_deg > 40.0:
        return "above"
    if elevation_deg < -40.0:
        return "below"
    return None


def distance_word(distance_m: float) -> str | None:
    """"near" (< 1 m), "far" (> 2 m) or None."""
    if distance_m < 1.0:
        return "near"
    if distance_m > 2.0:
        return "far"
    return None


def reverb_word(t30_s: float) -> str | None:
    """"highly reverberant" (T30 > 1 s), "acoustically dampened" (T30 < 0.2 s) or None."""
    if t30_s > 1.0:
        return "highly reverberant"
    if t30_s < 0.2:
        return "acoustically dampened"
    return None


def size_word(floor_area_m2: float) -> str:
    """"small" (< 50 m2), "large" (> 100 m2) or "medium-sized"."""
    if floor_area_m2 < 50.0:
        return "small"
    if floor_area_m2 > 100.0:
        return "large"
    return "medium-sized"


@dataclass(frozen=True)
class SpatialWords:
    """The words of one spatial configuration (None where the attribute is in its unnamed middle range)."""

    direction: str
    elevation: str | None
    distance: str | None
    reverb: str | None
    size: str

    def all(self) -> list[str]:
        """Every word that a caption of this configuration contains."""
        return [w for w in (self.direction, self.elevation, self.distance, self.reverb, self.size) if w]


def spatial_words(
    azimuth_deg: float, elevation_deg: float, distance_m: float, floor_area_m2: float, t30_s: float
) -> SpatialWords:
    """Map attribute values (degrees, metres, m2, seconds) to the words of docs/conventions.md section 2."""
    return SpatialWords(
        direction=direction_word(azimuth_deg),
        elevation=elevation_word(elevation_deg),
        distance=distance_word(distance_m),
        reverb=reverb_word(t30_s),
        size=size_word(floor_area_m2),
    )


# ----------------------------------------------------------------------------------------------------------------
# Words -> phrases
# ----------------------------------------------------------------------------------------------------------------


def _direction_phrase(words: SpatialWords, style: int, preposition: str | None = None) -> str:
    """Where the source is, e.g. "far to the front left and above"; ``style`` picks among equivalent wordings."""
    preposition = preposition or ("to the", "from the")[style % 2]
    phrase = f"{preposition} {words.direction}"
    if words.elevation:
        phrase += f" and {words.elevation}" if style % 3 else f", {words.elevation}"
    if words.distance == "far":
        phrase = f"far {phrase}" if preposition == "to the" else f"{phrase}, far away"
    elif words.distance == "near":
        phrase = f"near the listener, {phrase}" if style < 3 else f"{phrase}, near the listener"
    return phrase


def _room_adjectives(words: SpatialWords) -> str:
    return words.size + (f", {words.reverb}" if words.reverb else "")


def _room_phrase(words: SpatialWords) -> str:
    """Noun phrase with its article: "a large, highly reverberant room", "an acoustically dampened ..."."""
    adjectives = _room_adjectives(words)
    article = "an" if adjectives[0] in "aeiou" else "a"
    return f"{article} {adjectives} room"


def _room_predicate(words: SpatialWords) -> str:
    """ "large and highly reverberant" / "medium-sized"."""
    return words.size + (f" and {words.reverb}" if words.reverb else "")


def _clause(caption: str) -> str:
    """The semantic caption as a clause: stripped, no final full stop, first letter capitalised."""
    text = " ".join(caption.split()).rstrip(" .")
    if not text:
        raise ValueError("the semantic caption is empty")
    return text[0].upper() + text[1:]


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word looks like an acronym or a name ("TV", "McDonald")."""
    first_word = text.split(" ", 1)[0]
    if len(first_word) > 1 and any(c.isupper() for c in first_word[1:]):
        return text
    return text[0].lower() + text[1:]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


Phrasing = Callable[[str, SpatialWords, int], str]

# Each phrasing: (semantic clause, words, style) -> sentence. Keep every word verbatim (tests parse them back).
PHRASINGS: tuple[Phrasing, ...] = (
    lambda s, w, k: f"{s} {_direction_phrase(w, k)} in {_room_phrase(w)}.",
    lambda s, w, k: f"{s} {_direction_phrase(w, k, 'to the')} of {_room_phrase(w)}.",
    lambda s, w, k: f"In {_room_phrase(w)}, {_lower_first(s)} {_direction_phrase(w, k)}.",
    lambda s, w, k: f"{s}, heard {_direction_phrase(w, k)} in {_room_phrase(w)}.",
    lambda s, w, k: f"{_cap(_direction_phrase(w, k))}, {_lower_first(s)} in {_room_phrase(w)}.",
    lambda s, w, k: f"{s}. The source is {_direction_phrase(w, k, 'to the')}; the room is {_room_predicate(w)}.",
    lambda s, w, k: f"Inside {_room_phrase(w)}: {_lower_first(s)}, {_direction_phrase(w, k)}.",
    lambda s, w, k: f"{s} ({_direction_phrase(w, k)}, in {_room_phrase(w)}).",
    lambda s, w, k: f"Recorded in {_room_phrase(w)}, {_lower_first(s)} {_direction_phrase(w, k)}.",
    lambda s, w, k: f"{_cap(_room_phrase(w))} where {_lower_first(s)} {_direction_phrase(w, k)}.",
)


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def caption_from_words(
    caption: str,
    words: SpatialWords,
    rng: np.random.Generator | int | None = 0,
    phrasing: int | None = None,
    rephraser: Rephraser | None = None,
) -> str:
    """A spatial caption from a semantic caption and :class:`SpatialWords`.

    Args:
        caption: semantic caption, a clause or a noun phrase ("A dog barks", "Footsteps on gravel.").
        rng: generator or seed choosing the phrasing and its wording (deterministic for a seed).
        phrasing: force template ``PHRASINGS[phrasing]`` (the wording style is still drawn from ``rng``).
        rephraser: optional ``str -> str`` rewrite (see :class:`Rephraser`); off by default.
    """
    generator = _as_rng(rng)
    index = int(generator.integers(len(PHRASINGS))) if phrasing is None else phrasing
    style = int(generator.integers(6))
    text = PHRASINGS[index](_clause(caption), words, style)
    if rephraser is None:
        return text
    rewritten = rephraser(text)
    missing = [w for w in words.all() if not isinstance(rewritten, str) or w not in rewritten.lower()]
    if not isinstance(rewritten, str) or not rewritten.strip() or missing:
        logger.warning("rephraser output dropped spatial words %s; keeping the templated caption", missing)
        return text
    return rewritten.strip()


def spatial_caption(
    caption: str,
    azimuth_deg: float,
    elevation_deg: float,
    distance_m: float,
    floor_area_m2: float,
    t30_s: float,
    rng: np.random.Generator | int | None = 0,
    phrasing: int | None = None,
    rephraser: Rephraser | None = None,
) -> str:
    """Spatial caption of a semantic caption for attribute values (degrees, metres, m2, seconds).

    >>> spatial_caption("A dog barks", 90.0, 0.0, 3.0, 200.0, 1.5, phrasing=1)
    'A dog barks far to the left of a large, highly reverberant room.'
    """
    words = spatial_words(azimuth_deg, elevation_deg, distance_m, floor_area_m2, t30_s)
    return caption_from_words(caption, words, rng=rng, phrasing=phrasing, rephraser=rephraser)
