"""One generation request, checked once: :class:`GenerationRequest` (what ``pipe(...)`` and a batch row ask).

Every rule of the issue's "bad input" list that needs no model lives in ``__post_init__`` and raises
:class:`GenerationError` naming the value; the model-dependent ones (seconds above the DiT's maximum, descriptive
mode without ELSA) are checked by ``SoundstagePipeline.make_request``. Conventions: a mode given as None is
parametric when any spatial number or a trajectory is given, else descriptive; an azimuth without an elevation
means the horizon (elevation 0); a trajectory's parametric azimuth and elevation are its direction at the clip's
centre (always defined, unlike a mean direction, which vanishes for a full turn).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from soundstage.dit.sampling import SAMPLERS
from soundstage.foa import vector_to_angles, wrap_degrees

from .direction import Keyframe, parse_trajectory, trajectory_vectors
from .errors import GenerationError
from .prompt_direction import PromptDirection, direction_from_prompt

MODES = ("parametric", "descriptive")
SPATIAL_KEYS = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")
POSITIVE_KEYS = ("distance_m", "floor_area_m2", "t30_s")
MAX_SEED = 2**63 - 1


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GenerationError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise GenerationError(f"{name} must be a finite number, got {value}")
    return float(value)


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise GenerationError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise GenerationError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


@dataclass
class GenerationRequest:
    """A checked request; angles in degrees, distance in m, floor area in m2, T30 and seconds in s.

    ``seed`` None draws one at generation time (the result reports it); clip ``i`` of a batch uses ``seed + i``, so
    it is reproducible alone with ``batch_size=1``.
    """

    prompt: str
    seconds: float
    steps: int
    cfg_scale: float
    mode: str | None = None
    azimuth_deg: float | None = None
    elevation_deg: float | None = None
    distance_m: float | None = None
    floor_area_m2: float | None = None
    t30_s: float | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    batch_size: int = 1
    trajectory: str | None = None
    direction_lock: bool = True
    sampler: str = "euler"
    init_strength: float = 0.7
    keyframes: list[Keyframe] = field(default_factory=list, init=False, repr=False)
    prompt_direction: PromptDirection | None = field(default=None, init=False, repr=False)  # descriptive mode

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise GenerationError(f"prompt must be a text, got {self.prompt!r}")
        self.prompt = self.prompt.strip()
        for key in SPATIAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, _number(key, value))
        if self.azimuth_deg is not None:
            self.azimuth_deg = float(wrap_degrees(self.azimuth_deg))
            if self.elevation_deg is None:
                self.elevation_deg = 0.0
        if self.elevation_deg is not None and not -90 <= self.elevation_deg <= 90:
            raise GenerationError(f"elevation_deg must be in [-90, 90], got {self.elevation_deg:g}")
        for key in POSITIVE_KEYS:
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise GenerationError(f"{key} must be > 0, got {value:g}")
        if self.trajectory is not None:
            if self.azimuth_deg is not None or self.elevation_deg is not None:
                raise GenerationError("give either a trajectory or azimuth_deg/elevation_deg, not both")
            self.keyframes = parse_trajectory(self.trajectory)
        spatial = self.trajectory is not None or any(getattr(self, k) is not None for k in SPATIAL_KEYS)
        if self.mode is None:
            self.mode = "parametric" if spatial else "descriptive"
        if self.mode not in MODES:
            raise GenerationError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "descriptive":
            if spatial:
                raise GenerationError("descriptive mode takes the spatial description in the prompt; spatial numbers "
                                      "and trajectories need mode 'parametric'")
            if not self.prompt:
                raise GenerationError("the prompt is empty; descriptive mode needs a description such as 'a dog "
                                      "barks to the left in a large hall'")
            self.prompt_direction = direction_from_prompt(self.prompt)
        if self.negative_prompt is not None:
            if not isinstance(self.negative_prompt, str):
                raise GenerationError(f"negative_prompt must be a text, got {self.negative_prompt!r}")
            self.negative_prompt = self.negative_prompt.strip() or None
        self.seconds = _number("seconds", self.seconds)
        if self.seconds <= 0:
            raise GenerationError(f"seconds must be > 0, got {self.seconds:g}")
        self.steps = _whole("steps", self.steps, 1)
        self.cfg_scale = _number("cfg_scale", self.cfg_scale)
        if self.cfg_scale < 0:
            raise GenerationError(f"cfg_scale must be >= 0, got {self.cfg_scale:g}")
        if self.seed is not None:
            self.seed = _whole("seed", self.seed, 0)
            if self.seed > MAX_SEED:
                raise GenerationError(f"seed must be <= {MAX_SEED}, got {self.seed}")
        self.batch_size = _whole("batch_size", self.batch_size, 1)
        if self.sampler not in SAMPLERS:
            raise GenerationError(f"sampler must be one of {sorted(SAMPLERS)}, got {self.sampler!r}")
        self.init_strength = _number("init_strength", self.init_strength)
        if not 0 < self.init_strength <= 1:
            raise GenerationError(f"init_strength must be in (0, 1], got {self.init_strength:g}")
        if not isinstance(self.direction_lock, bool):
            raise GenerationError(f"direction_lock must be true or false, got {self.direction_lock!r}")

    @property
    def direction(self) -> tuple[float, float] | None:
        """(azimuth, elevation) in degrees for the parametric numbers: the given one, a trajectory's at the clip's
        centre, or None."""
        if self.keyframes:
            azimuth, elevation = vector_to_angles(trajectory_vectors(self.keyframes, 1, 1.0 / self.seconds)[0])
            return float(azimuth), float(elevation)
        if self.azimuth_deg is not None:
            return self.azimuth_deg, self.elevation_deg  # type: ignore[return-value]
        return None

    @property
    def target_direction(self) -> tuple[float, float] | None:
        """(azimuth, elevation) in degrees that the direction lock aims at: :attr:`direction` in parametric mode, the
        direction the prompt's words name in descriptive mode (:mod:`.prompt_direction`), else None."""
        if self.mode == "parametric":
            return self.direction
        words = self.prompt_direction
        if words is None or not words.lockable:
            return None
        return words.azimuth_deg, words.elevation_deg  # type: ignore[return-value]

    @property
    def locks_direction(self) -> bool:
        """Whether the direction track is imposed: the lock on and a trajectory or a target direction given."""
        return self.direction_lock and (bool(self.keyframes) or self.target_direction is not None)

    def to_record(self) -> dict[str, Any]:
        """The request as JSON values under the batch-row keys (a manifest row)."""
        keys = ("prompt", "mode", *SPATIAL_KEYS, "seconds", "seed", "steps", "cfg_scale", "negative_prompt",
                "trajectory")
        return {key: getattr(self, key) for key in keys}
