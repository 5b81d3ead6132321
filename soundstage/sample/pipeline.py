"""``SoundstagePipeline``: text (+ spatial numbers, trajectory, init audio) -> first-order ambisonics.

``SoundstagePipeline.from_pretrained("small")`` loads a generation folder (``codec/``, ``elsa/``, ``dit/``) and refuses
a DiT trained on another codec (:func:`soundstage.codec.codec_fingerprint`). ``pipe(prompt, ...)`` checks the request
(:class:`GenerationRequest`), conditions the DiT (cond and null/negative branch), samples rectified flow from seeded
noise (or from encoded ``init_audio`` at ``t0 = init_strength``) with classifier-free guidance, imposes the requested
direction on the codec's direction track during sampling (the transform hook on the predicted clean latent) and
exactly at the end (a trajectory: at its centre direction while sampling, along its path at the end), and decodes.
Returns :class:`GenerationResult`, which unpacks as ``foa, sample_rate = pipe(...)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from soundstage.codec import FOACodec, codec_fingerprint
from soundstage.codec.model import DECODE_ONLY_OPTIONS
from soundstage.common.audio import load_audio, resample
from soundstage.common.pretrained import PRETRAINED_ROOT
from soundstage.conditioners import NUMBER_KEYS, ConditionBatch
from soundstage.dit import SpatialDiT
from soundstage.dit.sampling import SAMPLERS, flow_timesteps, guided_velocity
from soundstage.elsa_encoder import ELSA
from soundstage.foa import direction_vector, encode_mono

from .direction import lock_direction, trajectory_vectors
from .errors import GenerationError
from .request import GenerationRequest

Progress = bool | Callable[[int, int], None]
InitAudio = str | Path | np.ndarray | torch.Tensor


@dataclass
class GenerationDefaults:
    """What a request leaves out. ``seconds`` None = min(5 s, the DiT's maximum)."""

    seconds: float | None = None
    steps: int = 25
    cfg_scale: float = 4.0  # provisional until benchmarks/bench_generate.py measures the bundled model
    guidance_interval: tuple[float, float] = (0.0, 1.0)  # t range where CFG applies
    shift: float = 1.0  # flow_timesteps shift


@dataclass
class GenerationResult:
    """Generated clips and how they were made; ``foa, sample_rate = result`` unpacks like the issue's tuple.

    Attributes:
        foa: ``(B, 4, T)`` float32 AmbiX at ``sample_rate``, ``T = round(seconds * sample_rate)``.
        sample_rate: Hz.
        seeds: the seed of each clip (``requested.seed + i``; drawn when the request gave none).
        requested: the checked request.
        latent: ``(B, C, L)`` the final scaled latent that was decoded.
        timings: wall seconds of ``conditioning``, ``dit`` (sampling) and ``decode``.
    """

    foa: torch.Tensor
    sample_rate: int
    seeds: list[int]
    requested: GenerationRequest
    latent: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.foa, self.sample_rate))


class SoundstagePipeline:
    """Codec + DiT (+ ELSA for descriptive mode); ``names`` label the codec and DiT in error messages."""

    def __init__(self, codec: FOACodec, dit: SpatialDiT, elsa: ELSA | None = None,
                 defaults: GenerationDefaults | None = None, names: tuple[str, str] = ("the codec", "the DiT")) -> None:
        fingerprint = codec_fingerprint(codec)
        if dit.config.codec_fingerprint != fingerprint:
            raise GenerationError(
                f"{names[1]} was trained on the codec with fingerprint {dit.config.codec_fingerprint or '(none)'}, "
                f"but {names[0]} has fingerprint {fingerprint}: use the codec the DiT was trained with"
            )
        self.codec, self.dit, self.elsa = codec.eval(), dit.eval(), elsa
        if elsa is not None:
            dit.attach_elsa(elsa.eval())
        self.defaults = defaults or GenerationDefaults()
        self.sample_rate = codec.sample_rate
        self.codec_fingerprint = fingerprint

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path = "small", device: str | torch.device = "cpu",
                        defaults: GenerationDefaults | None = None) -> SoundstagePipeline:
        """Load a generation folder (``codec/``, ``dit/`` and, for descriptive mode, ``elsa/``) or a bundled name."""
        folder = Path(path_or_name)
        if not folder.exists() and (PRETRAINED_ROOT / str(path_or_name)).is_dir():
            folder = PRETRAINED_ROOT / str(path_or_name)
        if not folder.is_dir():
            raise GenerationError(f"{path_or_name}: no such model folder or bundled model "
                                  f"({', '.join(sorted(p.name for p in PRETRAINED_ROOT.iterdir()))})")
        for part in ("codec", "dit"):
            if not (folder / part).is_dir():
                raise GenerationError(f"{folder}: no {part}/ folder; a generation model holds codec/, elsa/ and dit/")
        codec = FOACodec.from_pretrained(folder / "codec", device)
        dit = SpatialDiT.from_pretrained(folder / "dit", device)
        elsa = ELSA.from_pretrained(folder / "elsa", device) if (folder / "elsa").is_dir() else None
        return cls(codec, dit, elsa, defaults, names=(str(folder / "codec"), str(folder / "dit")))

    @property
    def device(self) -> torch.device:
        return self.codec.latent_scale.device

    @property
    def max_seconds(self) -> float:
        return float(self.dit.config.max_seconds)

    @cached_property
    def model_hash(self) -> str:
        """16 hex of sha256 over the fingerprints of the codec, the DiT and ELSA and the codec's decode-only settings
        that are not at their neutral values: what made a clip."""
        parts = [self.codec_fingerprint] + [codec_fingerprint(m) for m in (self.dit, self.elsa) if m is not None]
        decode = {k: getattr(self.codec.config, k) for k, neutral in DECODE_ONLY_OPTIONS.items()
                  if getattr(self.codec.config, k) != neutral}
        if decode:
            parts.append(json.dumps(decode, sort_keys=True))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def make_request(self, prompt: str, **options: Any) -> GenerationRequest:
        """A checked :class:`GenerationRequest` with this pipeline's defaults for the options left out (or None).

        Options: the keyword arguments of :meth:`__call__` except ``init_audio``, ``init_sample_rate`` and
        ``progress``. Raises GenerationError.
        """
        d = self.defaults
        unknown = set(options) - {f for f in GenerationRequest.__dataclass_fields__ if f != "keyframes"}
        if unknown:
            raise GenerationError(f"unknown generation options {sorted(unknown)}")
        chosen = {k: v for k, v in options.items() if v is not None}
        chosen.setdefault("seconds", d.seconds if d.seconds is not None else min(5.0, self.max_seconds))
        chosen.setdefault("steps", d.steps)
        chosen.setdefault("cfg_scale", d.cfg_scale)
        request = GenerationRequest(prompt=prompt, **chosen)
        if request.seconds > self.max_seconds:
            raise GenerationError(f"seconds must be <= {self.max_seconds:g}, this model's maximum; got "
                                  f"{request.seconds:g}")
        if request.mode == "descriptive" and self.elsa is None:
            raise GenerationError("this model has no elsa/ folder, which descriptive mode needs; give a spatial "
                                  "number (e.g. azimuth_deg) for parametric mode")
        return request

    def __call__(self, prompt: str, mode: str | None = None, azimuth_deg: float | None = None,
                 elevation_deg: float | None = None, distance_m: float | None = None,
                 floor_area_m2: float | None = None, t30_s: float | None = None, seconds: float | None = None,
                 steps: int | None = None, cfg_scale: float | None = None, negative_prompt: str | None = None,
                 seed: int | None = None, batch_size: int = 1, trajectory: str | None = None,
                 direction_lock: bool = True, sampler: str = "euler", init_audio: InitAudio | None = None,
                 init_strength: float = 0.7, init_sample_rate: int | None = None,
                 progress: Progress = True) -> GenerationResult:
        """Generate ``batch_size`` clips (see the module docstring; units: degrees, m, m2, s).

        ``init_audio``: a file path, or FOA ``(4, T)`` / ``(1 or B, 4, T)``, or mono ``(T,)`` / ``(1, T)`` (placed
        at the requested direction, the front if none) at ``init_sample_rate`` (default: the codec's; resampled),
        cropped or zero-padded to the clip. ``progress``: a tqdm bar over steps, False for none, or a callable
        ``progress(step, steps)``. Raises GenerationError for a bad request.
        """
        request = self.make_request(
            prompt, mode=mode, azimuth_deg=azimuth_deg, elevation_deg=elevation_deg, distance_m=distance_m,
            floor_area_m2=floor_area_m2, t30_s=t30_s, seconds=seconds, steps=steps, cfg_scale=cfg_scale,
            negative_prompt=negative_prompt, seed=seed, batch_size=batch_size, trajectory=trajectory,
            direction_lock=direction_lock, sampler=sampler, init_strength=init_strength)
        return self.generate(request, init_audio, init_sample_rate, progress)

    # ------------------------------------------------------------------ steps
    def condition_batch(self, request: GenerationRequest, negative: bool = False) -> ConditionBatch:
        """The conditions of ``request``; with ``negative``, the negative prompt in the mode's text slot and no
        spatial numbers (the branch that guidance pushes away from)."""
        b = request.batch_size
        numbers = {k: torch.full((b,), math.nan) for k in NUMBER_KEYS}
        if not negative:
            azimuth, elevation = request.direction or (None, request.elevation_deg)
            values = {"azimuth_deg": azimuth, "elevation_deg": elevation, "distance_m": request.distance_m,
                      "floor_area_m2": request.floor_area_m2, "t30_s": request.t30_s}
            numbers.update({k: torch.full((b,), float(v)) for k, v in values.items() if v is not None})
        text = (request.negative_prompt if negative else request.prompt) or None
        parametric = request.mode == "parametric"
        return ConditionBatch(semantic=[text if parametric else None] * b,
                              spatial_caption=[None if parametric else text] * b,
                              numbers=numbers, seconds=torch.full((b,), request.seconds))

    def direction_targets(self, request: GenerationRequest, frames: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Unit directions of the direction lock while sampling ``(1, 1 or frames, 3)`` and at the end
        ``(1, frames, 3)``, or None when it is off.

        A trajectory is sampled as a static scene at its direction at the clip's centre (the direction its numbers
        give the DiT) and its track turned onto the trajectory only at the end: the DiT learned static scenes, and a
        track that turns while it samples reads to it as a reverberant one (docs/generation.md, "Moving sources").
        """
        if not request.locks_direction:
            return None
        if request.keyframes:
            path = trajectory_vectors(request.keyframes, frames, self.codec.sample_rate / self.codec.hop)[None]
            return direction_vector(*request.direction).reshape(1, 1, 3), path  # type: ignore[misc]
        fixed = direction_vector(*request.target_direction).expand(1, frames, 3)  # type: ignore[misc]
        return fixed, fixed

    def encode_init(self, audio: InitAudio, sample_rate: int | None, request: GenerationRequest,
                    num_samples: int) -> torch.Tensor:
        """Scaled latent ``(1 or B, C, L)`` of ``init_audio`` (see :meth:`__call__`)."""
        if isinstance(audio, (str, Path)):
            array, sample_rate = load_audio(audio)
        else:
            array = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
        array = np.asarray(array, dtype=np.float32)
        if array.ndim == 1 or (array.ndim == 2 and array.shape[0] == 1):  # mono: a plane wave from the request
            azimuth, elevation = request.direction or (0.0, 0.0)
            array = encode_mono(array.reshape(-1), azimuth, elevation)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[1] != 4 or array.shape[0] not in (1, request.batch_size):
            raise GenerationError(f"init_audio must be mono (T,), FOA (4, T) or (1 or batch_size, 4, T); got shape "
                                  f"{tuple(array.shape)}")
        array = resample(array, int(sample_rate or self.sample_rate), self.sample_rate)
        array = array[..., :num_samples]
        array = np.pad(array, ((0, 0), (0, 0), (0, num_samples - array.shape[-1])))
        if not np.isfinite(array).all():
            raise GenerationError("init_audio contains NaN or infinite samples")
        return self.codec.encode(torch.from_numpy(array).to(self.device))

    @torch.inference_mode()
    def generate(self, request: GenerationRequest, init_audio: InitAudio | None = None,
                 init_sample_rate: int | None = None, progress: Progress = True) -> GenerationResult:
        """Run a checked request (from :meth:`make_request`); see :meth:`__call__`."""
        started = time.perf_counter()
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        seeds = [seed + i for i in range(request.batch_size)]
        num_samples = round(request.seconds * self.sample_rate)
        frames = self.codec.latent_length(num_samples)
        conditioners = self.dit.conditioners
        batch = self.condition_batch(request)
        cond = conditioners(batch)
        uncond = conditioners(self.condition_batch(request, negative=True) if request.negative_prompt
                              else batch.null_like())
        targets = self.direction_targets(request, frames)
        normalizer = self.codec.latent_normalizer
        held, final = targets or (None, None)
        transform = None if held is None else (lambda x0, t: lock_direction(x0, held.to(x0), normalizer))
        velocity = guided_velocity(self.dit, cond, uncond, request.cfg_scale, self.defaults.guidance_interval,
                                   transform)
        channels = self.dit.config.latent_channels
        noise = torch.stack([torch.randn(channels, frames, generator=torch.Generator().manual_seed(s))
                             for s in seeds]).to(self.device)
        timesteps = flow_timesteps(request.steps, self.defaults.shift)
        conditioned = time.perf_counter()

        x = noise
        if init_audio is not None:
            t0 = request.init_strength
            timesteps = t0 * timesteps
            x = (1 - t0) * self.encode_init(init_audio, init_sample_rate, request, num_samples) + t0 * noise
        bar = tqdm(total=request.steps, desc="generate", unit="step", disable=progress is not True, leave=False)

        def callback(i: int, _: torch.Tensor) -> None:
            bar.update(1)
            if callable(progress):
                progress(i, request.steps)

        try:
            latent = SAMPLERS[request.sampler](velocity, x, timesteps, callback)
        finally:
            bar.close()
        if final is not None:
            latent = lock_direction(latent, final.to(latent), normalizer)
        sampled = time.perf_counter()
        foa = self.codec.decode(latent, length=num_samples).float()
        timings = {"conditioning": conditioned - started, "dit": sampled - conditioned,
                   "decode": time.perf_counter() - sampled}
        return GenerationResult(foa.cpu(), self.sample_rate, seeds, request, latent.cpu(), timings)
