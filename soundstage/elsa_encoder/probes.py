"""Zero-shot probes: spatial classes, their text prompts and text prototypes, and the classes of a clip's labels.

Classes follow docs/conventions.md section 2 via :mod:`soundstage.data.captions`: a clip whose attribute lies between
named bands (e.g. azimuth 45 deg, "front left", or distance 1.5 m) has no class for that attribute.

A class prototype is the normalised mean text embedding of its prompts ("prompt ensembling"): short hand-written
probes ("A sound coming from the left.") plus the caption templates of :mod:`soundstage.data.captions` filled with a
neutral source ("A sound") and the class word, averaged over the other attributes so that only the class word
differs between the prototypes of one attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from soundstage.data import captions as cap

ATTRIBUTE_CLASSES: dict[str, tuple[str, ...]] = {
    "direction": ("front", "left", "right", "back"),
    "distance": ("near", "far"),
    "elevation": ("above", "below"),
    "room_size": ("small", "large"),
    "reverberation": ("highly reverberant", "acoustically dampened"),
}

_HAND_PROBES: dict[str, dict[str, tuple[str, ...]]] = {
    "direction": {
        w: (f"A sound coming from the {w}.", f"A sound to the {w}.", f"Something is heard from the {w}.")
        for w in ATTRIBUTE_CLASSES["direction"]
    },
    "distance": {
        "near": ("A sound near the listener.", "A sound very close by.", "A nearby sound."),
        "far": ("A sound far away.", "A distant sound.", "A sound far from the listener."),
    },
    "elevation": {
        "above": ("A sound coming from above.", "A sound above the listener.", "Something is heard from above."),
        "below": ("A sound coming from below.", "A sound below the listener.", "Something is heard from below."),
    },
    "room_size": {
        w: (f"A sound in a {w} room.", f"Recorded in a {w} room.", f"A {w} room.") for w in ("small", "large")
    },
    "reverberation": {
        "highly reverberant": ("A sound in a highly reverberant room.", "A sound with long, strong reverberation."),
        "acoustically dampened": ("A sound in an acoustically dampened room.", "A dry sound with almost no echo."),
    },
}

_NEUTRAL_SOURCES = ("A sound", "A noise")


def _template_probes(attribute: str, word: str) -> list[str]:
    """Caption-template probes of one class word, marginalised over the other attributes' words."""
    directions = ATTRIBUTE_CLASSES["direction"]
    variants: list[dict[str, Any]] = []
    if attribute == "direction":
        variants = [dict(direction=word, size=s) for s in cap.SIZE_WORDS]
    elif attribute == "distance":
        variants = [dict(direction=d, distance=word, size="medium-sized") for d in directions]
    elif attribute == "elevation":
        variants = [dict(direction=d, elevation=word, size="medium-sized") for d in directions]
    elif attribute == "room_size":
        variants = [dict(direction=d, size=word) for d in directions]
    elif attribute == "reverberation":
        variants = [dict(direction=d, reverb=word, size="medium-sized") for d in directions]
    texts = []
    for p in range(len(cap.PHRASINGS)):  # each phrasing once, cycling through the other attributes' words
        v = variants[p % len(variants)]
        words = cap.SpatialWords(
            direction=v["direction"], elevation=v.get("elevation"), distance=v.get("distance"),
            reverb=v.get("reverb"), size=v["size"],
        )
        source = _NEUTRAL_SOURCES[p % len(_NEUTRAL_SOURCES)]
        texts.append(cap.caption_from_words(source, words, rng=p, phrasing=p))
    return texts


def probe_texts(attribute: str, templates: bool = True) -> dict[str, list[str]]:
    """Prompts per class of ``attribute`` (one of :data:`ATTRIBUTE_CLASSES`); ``templates=False`` gives only the
    short hand-written probes."""
    if attribute not in ATTRIBUTE_CLASSES:
        raise KeyError(f"unknown attribute {attribute!r}; choose one of {sorted(ATTRIBUTE_CLASSES)}")
    out = {}
    for word in ATTRIBUTE_CLASSES[attribute]:
        texts = list(_HAND_PROBES[attribute][word])
        if templates:
            texts += _template_probes(attribute, word)
        out[word] = texts
    return out


@torch.no_grad()
def class_prototypes(model: Any, attribute: str, templates: bool = True) -> torch.Tensor:
    """``(C, D)`` unit text prototypes of the classes of ``attribute``, in :data:`ATTRIBUTE_CLASSES` order."""
    rows = []
    for texts in probe_texts(attribute, templates).values():
        rows.append(F.normalize(model.embed_text(texts).mean(0), dim=-1))
    return torch.stack(rows)


def attribute_label(attribute: str, labels: Mapping[str, float]) -> int:
    """Class index of a clip for ``attribute`` from its labels (``azimuth_deg``, ``elevation_deg``, ``distance_m``,
    ``floor_area_m2``, ``t30_s``), or -1 when the clip has no class (between bands, or non-spatial/NaN)."""
    keys = {
        "direction": "azimuth_deg", "distance": "distance_m", "elevation": "elevation_deg",
        "room_size": "floor_area_m2", "reverberation": "t30_s",
    }
    value = float(labels[keys[attribute]])
    if not math.isfinite(value):
        return -1
    word = {
        "direction": cap.direction_word,
        "distance": cap.distance_word,
        "elevation": cap.elevation_word,
        "room_size": cap.size_word,
        "reverberation": cap.reverb_word,
    }[attribute](value)
    classes = ATTRIBUTE_CLASSES[attribute]
    return classes.index(word) if word in classes else -1
