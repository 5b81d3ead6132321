"""What a generation request gives the conditioners (:class:`ConditionBatch`) and what they give the DiT
(:class:`Conditioning`).

``None`` (texts) or NaN (numbers, seconds) means "not given": the conditioner uses its learned null, the same one
that training dropout and classifier-free guidance use. Anything else is checked here once, so every caller
(pipeline, training task, tests) gets the same one-line error for an infinite number or an empty text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from soundstage.common.errors import SoundstageError

NUMBER_KEYS = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")
POSITIVE_KEYS = ("distance_m", "floor_area_m2", "t30_s")  # log-encoded: must be > 0


class ConditionError(SoundstageError, ValueError):
    """A condition that cannot be used: infinite, out of range, an empty text, or a mismatched batch."""


@dataclass
class ConditionBatch:
    """A batch of requests; ``None`` / NaN = not given (the conditioner's learned null is used).

    Attributes:
        semantic: ``B`` semantic captions ("a dog barks") for the parametric text conditioner.
        spatial_caption: ``B`` whole spatial captions for the descriptive (ELSA) conditioner.
        numbers: one ``(B,)`` float tensor per key of :data:`NUMBER_KEYS` (degrees, metres, m2, seconds).
        seconds: ``(B,)`` clip length in seconds.
    """

    semantic: list[str | None]
    spatial_caption: list[str | None]
    numbers: dict[str, torch.Tensor]
    seconds: torch.Tensor

    def __post_init__(self) -> None:
        size = len(self.semantic)
        if len(self.spatial_caption) != size or self.seconds.shape != (size,):
            raise ConditionError(
                f"a ConditionBatch needs B entries everywhere: {size} semantic captions, {len(self.spatial_caption)} "
                f"spatial captions, seconds of shape {tuple(self.seconds.shape)}"
            )
        if set(self.numbers) != set(NUMBER_KEYS):
            raise ConditionError(f"numbers must have exactly the keys {NUMBER_KEYS}, got {sorted(self.numbers)}")
        for name, texts in (("semantic caption", self.semantic), ("spatial caption", self.spatial_caption)):
            for i, text in enumerate(texts):
                if text is not None and (not isinstance(text, str) or not text.strip()):
                    raise ConditionError(f"{name} {i} is {text!r}: give a non-empty text, or None for 'not given'")
        for key in NUMBER_KEYS:
            values = self.numbers[key]
            if values.shape != (size,):
                raise ConditionError(f"numbers[{key!r}] has shape {tuple(values.shape)}, expected ({size},)")
            _check_values(key, values, positive=key in POSITIVE_KEYS)
        given = self.numbers["elevation_deg"][~self.numbers["elevation_deg"].isnan()]
        if given.numel() and given.abs().max() > 90:
            raise ConditionError(f"elevation_deg must be in [-90, 90], got {given.abs().max().item():g}")
        _check_values("seconds", self.seconds, positive=True)

    def __len__(self) -> int:
        return len(self.semantic)

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]]) -> ConditionBatch:
        """A batch from manifest-like dicts with keys ``caption`` (the semantic caption), ``spatial_caption``, the
        :data:`NUMBER_KEYS` and ``seconds``; a missing key (or a None value) is "not given"."""

        def number(record: dict[str, Any], key: str) -> float:
            value = record.get(key)
            return math.nan if value is None else float(value)

        return cls(
            semantic=[r.get("caption") for r in records],
            spatial_caption=[r.get("spatial_caption") for r in records],
            numbers={k: torch.tensor([number(r, k) for r in records], dtype=torch.float32) for k in NUMBER_KEYS},
            seconds=torch.tensor([number(r, "seconds") for r in records], dtype=torch.float32),
        )

    def null_like(self) -> ConditionBatch:
        """The same batch with every content condition "not given" and the same ``seconds``: the unconditional
        branch of classifier-free guidance. The length stays, because both branches must agree on where the clip
        ends."""
        size = len(self)
        return ConditionBatch(
            semantic=[None] * size,
            spatial_caption=[None] * size,
            numbers={k: torch.full((size,), math.nan) for k in NUMBER_KEYS},
            seconds=self.seconds.clone(),
        )


def _check_values(name: str, values: torch.Tensor, positive: bool) -> None:
    """Refuse infinite values (NaN is "not given") and, for log-encoded quantities, values <= 0."""
    if not values.is_floating_point():
        raise ConditionError(f"{name} must be a float tensor, got {values.dtype}")
    if values.isinf().any():
        raise ConditionError(f"{name} has an infinite value ({values.tolist()}); give a finite number, or NaN/None "
                             "for 'not given'")
    given = values[~values.isnan()]
    if positive and given.numel() and given.min() <= 0:
        raise ConditionError(f"{name} must be > 0, got {given.min().item():g}")


@dataclass
class Conditioning:
    """What the DiT is conditioned on.

    Attributes:
        tokens: ``(B, N, cond_dim)`` cross-attention tokens.
        mask: ``(B, N)`` bool, True = attend (every row has at least one True).
        global_vector: ``(B, cond_dim)`` added to the timestep embedding (adaLN).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    global_vector: torch.Tensor
