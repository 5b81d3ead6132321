"""What the app does, as plain functions over a :class:`SoundstagePipeline` (no gradio, so tests call them directly):
generate clips (:func:`generate_clips`), rotate one exactly (:func:`rotate_clip`), and describe them.

Every file goes into one :class:`Workspace` (a temporary folder, removed on exit), each clip in a folder of its own.
A clip is rendered once into: the 4-channel AmbiX WAV (32-bit float, named after the prompt and seed), binaural and
stereo previews (16-bit), a direction map with the requested, measured and ELSA directions marked, and the W
spectrogram. Values a user can get wrong raise :class:`~soundstage.common.errors.SoundstageError` subclasses whose
message the UI shows as it is.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundstage.common.audio import AudioError, audio_info, load_audio
from soundstage.common.errors import SoundstageError
from soundstage.foa import (
    broadband_doa,
    direction_vector,
    great_circle_deg,
    rotate_foa,
    rotation_matrix,
    vector_to_angles,
)
from soundstage.foa_files import _save_foa, load_foa, render_preview
from soundstage.sample import GenerationRequest, SoundstagePipeline, parse_trajectory, trajectory_vectors

from .render import draw_picker, plot_direction_map, plot_spectrogram

Direction = tuple[float, float]  # (azimuth, elevation) in degrees
Progress = Callable[[float, str], None]  # (fraction done, what is happening)

MODES = ("parametric", "descriptive")
MOVING_WINDOW_S = 0.25  # a moving source's direction is measured over its first and last quarter second


class AppError(SoundstageError, ValueError):
    """A request the app refuses (a limit, an upload, a clip no longer stored); the UI shows the message."""


@dataclass(frozen=True)
class AppLimits:
    """What one request and one server may use; the app refuses more with a message."""

    max_variations: int = 4  # clips per request (a batch)
    max_steps: int = 100
    max_upload_mb: int = 50  # any upload (gradio refuses larger files before they reach a handler)
    max_init_seconds: float = 60.0  # init audio longer than this is refused before decoding
    max_history: int = 20  # generations kept in a browser session's history
    max_stored_clips: int = 200  # clip folders kept in the workspace; the oldest are deleted beyond this
    concurrency: int = 1  # generations running at once (at most one per CPU core)
    max_queue: int = 16  # requests waiting; more are refused with "queue full"


class Workspace:
    """The app's one temporary folder: ``clips/`` (one folder per rendered clip) and ``gradio/`` (uploads and the
    copies gradio serves). Removed by :meth:`close`."""

    def __init__(self, max_clips: int = AppLimits.max_stored_clips) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="soundstage-app-"))
        self.clips = self.root / "clips"
        self.gradio = self.root / "gradio"
        self.clips.mkdir()
        self.gradio.mkdir()
        self.max_clips = max_clips
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_clip_folder(self) -> Path:
        """A new empty folder for one clip; the oldest clip folders beyond ``max_clips`` are deleted."""
        with self._lock:
            folder = self.clips / f"{next(self._counter):06d}"
            folder.mkdir()
            stored = sorted(self.clips.iterdir())
            for old in stored[: max(0, len(stored) - self.max_clips)]:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Clip:
    """One rendered clip: a generation, or a rotation of one. Directions are (azimuth, elevation) in degrees.

    ``requested`` is what was asked (``requested`` for a static source, ``start``/``end`` for a moving one) before
    ``rotation`` (yaw, pitch, roll in degrees) was applied; ``measured`` and ``elsa`` describe the rotated audio.
    ``original`` is the unrotated AmbiX file that rotations start from.
    """

    prompt: str
    mode: str
    seed: int
    request: dict[str, Any]
    requested: dict[str, Direction]
    measured: dict[str, Direction] = field(default_factory=dict)
    elsa: dict[str, float] | None = None
    original: Path = Path()
    ambix: Path = Path()
    binaural: Path = Path()
    stereo: Path = Path()
    direction_map: Path = Path()
    spectrogram: Path = Path()
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    created: float = field(default_factory=time.time)

    @property
    def requested_now(self) -> dict[str, Direction]:
        """``requested`` turned by ``rotation``, as the audio was."""
        return {name: rotate_direction(direction, self.rotation) for name, direction in self.requested.items()}


def rotate_direction(direction: Direction, rotation: tuple[float, float, float]) -> Direction:
    """(azimuth, elevation) after the FOA rotation ``(yaw, pitch, roll)`` degrees (soundstage.foa.rotation)."""
    if not any(rotation):
        return direction
    azimuth, elevation = vector_to_angles(rotation_matrix(*rotation) @ direction_vector(*direction))
    return float(azimuth), float(elevation)


def file_stem(prompt: str, seed: int, rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> str:
    """``a_dog_barks_seed7`` (+ ``_rot90_0_0`` when rotated): the download's name, safe on every file system."""
    slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:48].rstrip("_") or "clip"
    stem = f"{slug}_seed{seed}"
    if any(rotation):
        stem += "_rot" + "_".join(f"{angle:g}" for angle in rotation)
    return stem


def _direction_at(request: GenerationRequest, time_s: float) -> Direction:
    """A trajectory's direction at ``time_s`` seconds (``trajectory_vectors`` evaluates frame centres)."""
    vector = trajectory_vectors(request.keyframes, 1, 0.5 / max(time_s, 1e-6))[0]
    azimuth, elevation = vector_to_angles(vector)
    return float(azimuth), float(elevation)


def requested_directions(request: GenerationRequest, sample_rate: int, num_samples: int) -> dict[str, Direction]:
    """What a request asked for: ``requested`` (a static parametric source), ``start``/``end`` (a moving one, at the
    centres of the windows that :func:`measure_directions` uses), or nothing (descriptive mode without direction
    words)."""
    if request.keyframes:
        half = _window(sample_rate, num_samples) / 2
        return {"start": _direction_at(request, half / sample_rate),
                "end": _direction_at(request, (num_samples - half) / sample_rate)}
    direction = request.target_direction
    return {} if direction is None else {"requested": direction}


def _window(sample_rate: int, num_samples: int) -> int:
    return max(1, min(round(MOVING_WINDOW_S * sample_rate), num_samples // 4))


def measure_directions(foa: np.ndarray, sample_rate: int, moving: bool) -> dict[str, Direction]:
    """Broadband direction (soundstage.foa.broadband_doa) of the clip, or of its first and last quarter second."""
    def measure(audio: np.ndarray) -> Direction:
        azimuth, elevation = broadband_doa(audio)
        return float(azimuth), float(elevation)

    if not moving:
        return {"measured": measure(foa)}
    window = _window(sample_rate, foa.shape[-1])
    return {"measured start": measure(foa[:, :window]), "measured end": measure(foa[:, -window:])}


def elsa_reading(pipe: SoundstagePipeline, foa: np.ndarray, sample_rate: int) -> dict[str, float] | None:
    """ELSA's spatial heads on ``(4, T)`` audio (direction, distance, floor area, T30), or None without ELSA."""
    if pipe.elsa is None:
        return None
    with torch.inference_mode():
        heads = pipe.elsa.predict_spatial(foa, sample_rate)
    return {name: float(value[0]) for name, value in heads.items()}


def render_clip(pipe: SoundstagePipeline, workspace: Workspace, foa: np.ndarray, template: Clip) -> Clip:
    """Write ``(4, T)`` AmbiX audio and everything shown about it into a new clip folder; ``template`` gives the
    prompt, seed, request, requested directions and rotation (its paths and measurements are replaced)."""
    sample_rate = pipe.sample_rate
    folder = workspace.new_clip_folder()
    stem = file_stem(template.prompt, template.seed, template.rotation)
    ambix = _save_foa(folder / f"{stem}.wav", foa, sample_rate)
    previews = {kind: render_preview(ambix, folder / f"{stem}.{kind}.wav", kind=kind)
                for kind in ("binaural", "stereo")}
    clip = dataclasses.replace(template, ambix=ambix, binaural=previews["binaural"], stereo=previews["stereo"],
                               original=template.original if any(template.rotation) else ambix,
                               measured=measure_directions(foa, sample_rate, "start" in template.requested),
                               elsa=elsa_reading(pipe, foa, sample_rate), created=time.time())
    points = {**clip.requested_now, **clip.measured}
    if clip.elsa is not None:
        points["ELSA"] = (clip.elsa["azimuth_deg"], clip.elsa["elevation_deg"])
    clip.direction_map = plot_direction_map(foa, folder / f"{stem}.map.png", points)
    if not any(template.rotation) or not template.spectrogram.is_file():  # W, and so its spectrogram, is rotation-free
        clip.spectrogram = plot_spectrogram(foa, sample_rate, folder / f"{stem}.spectrogram.png")
    return clip


def _init_audio(path: str | Path, limits: AppLimits, sample_rate: int) -> np.ndarray:
    """An uploaded file as FOA ``(4, T)`` (a 4-channel file, read as AmbiX) or mono ``(T,)`` (anything else, mixed
    down; the pipeline places it at the requested direction), at ``sample_rate``; AppError/AudioError naming the
    file by its own name when it is too long or not usable audio."""
    name = Path(path).name
    try:
        info = audio_info(path)
        if info.num_frames > limits.max_init_seconds * info.sample_rate:
            raise AppError(f"init audio {name} is {info.num_frames / info.sample_rate:.1f} s long; at most "
                           f"{limits.max_init_seconds:g} s is accepted (only the clip's length is used)")
        audio, _ = load_audio(path, sample_rate=sample_rate, mono=info.channels != 4)
    except AudioError as exc:
        raise AudioError(str(exc).replace(str(path), name), exc.reason) from None
    return audio if info.channels == 4 else audio[0]


def _whole(name: str, value: Any, low: int, high: int) -> int:
    try:
        whole = float(value).is_integer() and low <= value <= high
    except (TypeError, ValueError):  # None, a text: not a number at all
        whole = False
    if not whole:
        raise AppError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def generate_clips(pipe: SoundstagePipeline, workspace: Workspace, limits: AppLimits, prompt: str,
                   mode: str = "parametric", azimuth_deg: float | None = 0.0, elevation_deg: float | None = 0.0,
                   distance_m: float | None = None, floor_area_m2: float | None = None, t30_s: float | None = None,
                   seconds: float | None = None, steps: int | None = None, cfg_scale: float | None = None,
                   negative_prompt: str | None = None, seed: int | None = None, end_direction: Direction | None = None,
                   init_audio: str | Path | None = None, init_strength: float = 0.7, variations: int = 1,
                   progress: Progress | None = None) -> list[Clip]:
    """Generate ``variations`` clips (seeds ``seed``, ``seed + 1``, ...) and render each (:func:`render_clip`).

    Units: degrees, m, m2, s. ``mode`` descriptive ignores the direction, room and ``end_direction`` (the prompt
    says where); parametric places the source at (``azimuth_deg``, ``elevation_deg``), moving to ``end_direction``
    over the clip when given. ``seed`` None or -1 draws one. ``init_audio``: a file (FOA, else mixed to mono).
    Raises AppError, GenerationError or AudioError with a message for the user.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise AppError("the prompt is empty: say what to hear, e.g. 'a dog barks'")
    if mode not in MODES:
        raise AppError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if seed is not None and seed == -1:
        seed = None
    steps = None if steps is None else _whole("steps", steps, 1, limits.max_steps)
    variations = _whole("variations", variations, 1, limits.max_variations)
    spatial: dict[str, Any] = {}
    if mode == "parametric":
        spatial = {"azimuth_deg": azimuth_deg, "elevation_deg": elevation_deg, "distance_m": distance_m,
                   "floor_area_m2": floor_area_m2, "t30_s": t30_s}
    request = pipe.make_request(prompt, mode=mode, seconds=seconds, steps=steps, cfg_scale=cfg_scale,
                                negative_prompt=negative_prompt, seed=seed, batch_size=variations,
                                init_strength=init_strength, **spatial)
    if end_direction is not None and request.direction is not None:
        start, end = request.direction, end_direction
        trajectory = f"0:{start[0]:g}:{start[1]:g},{request.seconds:g}:{end[0]:g}:{end[1]:g}"
        request = dataclasses.replace(request, azimuth_deg=None, elevation_deg=None, trajectory=trajectory)
    audio = None if init_audio is None else _init_audio(init_audio, limits, pipe.sample_rate)

    def on_step(step: int, total: int) -> None:
        if progress is not None:
            progress(0.8 * step / total, f"sampling: step {step} of {total}")

    result = pipe.generate(request, init_audio=audio, progress=on_step)
    num_samples = result.foa.shape[-1]
    requested = requested_directions(request, pipe.sample_rate, num_samples)
    clips = []
    for i, seed_i in enumerate(result.seeds):
        if progress is not None:
            progress(0.8 + 0.2 * i / len(result.seeds), f"rendering previews and maps ({i + 1} of {variations})")
        template = Clip(prompt=request.prompt, mode=request.mode or mode, seed=seed_i,
                        request={**request.to_record(), "seed": seed_i}, requested=requested)
        clips.append(render_clip(pipe, workspace, result.foa[i].numpy(), template))
    return clips


def rotate_clip(pipe: SoundstagePipeline, workspace: Workspace, clip: Clip, yaw: float, pitch: float,
                roll: float) -> Clip:
    """``clip``'s original audio rotated exactly by (yaw, pitch, roll) degrees (FOA rotation: W unchanged, the
    vector part turned), rendered anew; (0, 0, 0) gives the original back."""
    rotation = tuple(float(a) for a in (yaw, pitch, roll))
    if not all(np.isfinite(rotation)):
        raise AppError(f"yaw, pitch and roll must be finite numbers of degrees, got {rotation}")
    if not clip.original.is_file():
        raise AppError("this clip is no longer stored (the app keeps the most recent clips); generate it again "
                       f"with seed {clip.seed}")
    foa, _ = load_foa(clip.original)
    return render_clip(pipe, workspace, rotate_foa(foa, *rotation), dataclasses.replace(clip, rotation=rotation))


def _angles(direction: Direction) -> str:
    return f"az {direction[0]:+.1f}, el {direction[1]:+.1f}"


def describe(clip: Clip) -> str:
    """A few Markdown lines: seed, mode, requested and measured directions (with the error), ELSA's reading."""
    lines = [f"**seed {clip.seed}** · {clip.mode} mode · `{clip.ambix.name}`"
             + (" · rotated by yaw/pitch/roll " + "/".join(f"{a:g}" for a in clip.rotation) + " deg"
                if any(clip.rotation) else "")]
    requested = clip.requested_now
    for (name, wanted), (_, got) in zip(requested.items(), clip.measured.items()):
        error = float(great_circle_deg(*wanted, *got))
        label = "direction" if name == "requested" else name
        if clip.mode == "descriptive":
            label += " (named in the prompt)"
        lines.append(f"{label}: requested {_angles(wanted)}; measured {_angles(got)} (off by {error:.1f} deg)")
    if not requested:
        lines.append(f"direction: measured {_angles(clip.measured['measured'])} (descriptive: the model's own, "
                     "the prompt names no single direction)")
    if clip.elsa is not None:
        e = clip.elsa
        lines.append(f"ELSA hears: {_angles((e['azimuth_deg'], e['elevation_deg']))}, distance {e['distance_m']:.1f} "
                     f"m, floor area {e['floor_area_m2']:.0f} m², T30 {e['t30_s']:.2f} s")
    return "\n\n".join(lines)


def details(clip: Clip) -> dict[str, Any]:
    """The clip as JSON values (the API's details output): the request, seed, directions, ELSA's reading, files."""
    return {"seed": clip.seed, "mode": clip.mode, "request": clip.request, "rotation_deg": list(clip.rotation),
            "requested": {k: list(v) for k, v in clip.requested_now.items()},
            "measured": {k: list(v) for k, v in clip.measured.items()}, "elsa": clip.elsa,
            "files": {"ambix": clip.ambix.name, "binaural": clip.binaural.name, "stereo": clip.stereo.name}}


def history_rows(history: list[Clip]) -> list[list[Any]]:
    """One row per clip of a session's history, newest first: number, prompt, seed, requested, measured."""
    rows = []
    for number, clip in reversed(list(enumerate(history, start=1))):
        requested = "; ".join(_angles(d) for d in clip.requested_now.values()) or "(prompt)"
        measured = "; ".join(_angles(d) for d in clip.measured.values())
        rows.append([number, clip.prompt, clip.seed, clip.mode, requested, measured])
    return rows


def picker_image(start: Direction, end: Direction | None = None) -> np.ndarray:
    """The top view with the source at ``start`` or, for a moving source, its path from ``start`` to ``end``."""
    if end is None:
        return draw_picker({"source": start})
    keyframes = parse_trajectory(f"0:{start[0]:g}:{start[1]:g},1:{end[0]:g}:{end[1]:g}")
    path = [tuple(float(a) for a in vector_to_angles(v)) for v in trajectory_vectors(keyframes, 49, 48.0)]
    return draw_picker({"start": start, "end": end}, path)  # type: ignore[arg-type]
