"""The direction a descriptive prompt names in words ("a dog barks on the left", "footsteps behind me").

Descriptive mode conditions the DiT on ELSA's embedding of the whole prompt, and the model alone puts the source in
the named quadrant only part of the time (docs/generation.md). Where the prompt names a direction in plain words,
the pipeline locks the codec's direction track to it as parametric mode does with numbers (``--no-direction-lock``
leaves the model's own). The words are the captions' (``soundstage.data.captions``: front, front left, left, back
left, back, ...; above, below) and their everyday forms ("on my left", "in front", "behind", "overhead"); each maps to
the centre of the caption word's range. A side ("left", "right") counts only after a spatial preposition ("on the
left", "to my right") or as "left side" / "left-hand side", so "the right tool" names no direction.

Only an unambiguous azimuth locks: none named, or two different ones ("from left to right"), leaves the model's own
direction; an elevation word alone ("a bird above") does not fix an azimuth and locks nothing either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ELEVATION_DEG = 45.0  # "above" / "below": the captions use them beyond +-40 deg; the data reach +-48 deg

_OWNER = r"(?:the|my|your|our|his|her|their|one's)"
_PREP = r"(?:on|to|from|at|toward|towards|off)"
_SEP = r"[\s-]+"
# (azimuth, pattern), compound directions before simple ones; a match's span is consumed
_AZIMUTH_PATTERNS: tuple[tuple[float, str], ...] = (
    (45.0, rf"\bfront{_SEP}left\b|\bleft{_SEP}front\b"),
    (-45.0, rf"\bfront{_SEP}right\b|\bright{_SEP}front\b"),
    (135.0, rf"\b(?:back|rear){_SEP}left\b|\bleft{_SEP}(?:back|rear)\b|\bbehind (?:\w+ )?{_PREP} {_OWNER} left\b"),
    (-135.0, rf"\b(?:back|rear){_SEP}right\b|\bright{_SEP}(?:back|rear)\b|\bbehind (?:\w+ )?{_PREP} {_OWNER} right\b"),
    (90.0, rf"\b{_PREP} {_OWNER} left\b|\bleft(?:{_SEP}hand)? side\b|\bleftwards?\b"),
    (-90.0, rf"\b{_PREP} {_OWNER} right\b|\bright(?:{_SEP}hand)? side\b|\brightwards?\b"),
    (0.0, r"\bin front\b|\b(?:to|from|at|in) the front\b|\bahead\b"),
    (180.0, r"\bbehind\b|\b(?:to|from|at|in) the (?:back|rear)\b"),
)
_ELEVATION_PATTERNS: tuple[tuple[float, str], ...] = (
    (ELEVATION_DEG, r"\babove\b|\boverhead\b"),
    (-ELEVATION_DEG, r"\bbelow\b|\bbeneath\b|\bunderneath\b"),
)


@dataclass(frozen=True)
class PromptDirection:
    """What a prompt's words say about direction.

    Attributes:
        phrases: the direction phrases found, in the order of the patterns.
        azimuth_deg: the named azimuth; None when none or several different ones are named.
        elevation_deg: the named elevation (+-``ELEVATION_DEG``), 0 when none is named; None when both are.
    """

    phrases: tuple[str, ...]
    azimuth_deg: float | None
    elevation_deg: float | None

    @property
    def lockable(self) -> bool:
        """Whether the words fix one direction: exactly one azimuth and at most one elevation."""
        return self.azimuth_deg is not None and self.elevation_deg is not None

    def describe(self) -> str:
        """For messages: ``'on the left'`` or why the words fix no direction."""
        if not self.phrases:
            return "the prompt names no direction"
        quoted = ", ".join(f"'{p}'" for p in self.phrases)
        return quoted if self.lockable else f"{quoted}: no single direction"


def _find(text: str, patterns: tuple[tuple[float, str], ...]) -> tuple[list[str], set[float], str]:
    phrases, values = [], set()
    for value, pattern in patterns:
        for match in re.finditer(pattern, text):
            phrases.append(match.group(0))
            values.add(value)
        text = re.sub(pattern, " ", text)  # a compound's words do not count again as simple ones
    return phrases, values, text


def direction_from_prompt(prompt: str) -> PromptDirection:
    """The direction ``prompt`` names in words (module doc); case and extra spaces do not matter."""
    text = " ".join(prompt.lower().split())
    phrases, azimuths, text = _find(text, _AZIMUTH_PATTERNS)
    more, elevations, _ = _find(text, _ELEVATION_PATTERNS)
    azimuth = next(iter(azimuths)) if len(azimuths) == 1 else None
    elevation = 0.0 if not elevations else (next(iter(elevations)) if len(elevations) == 1 else None)
    return PromptDirection(tuple(phrases + more), azimuth, elevation)
