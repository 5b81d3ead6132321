"""Codec evaluation on a dataset split: ``soundstage evaluate codec --model DIR --data DIR [--out FILE.json]``.

Every clip is encoded (posterior mean) and decoded at full length, then compared with its input:

| metric | meaning |
|---|---|
| ``si_sdr_db_{W,Y,Z,X}`` | scale-invariant SDR per AmbiX channel (dB, higher is better) |
| ``mrstft_distance`` / ``mel_distance`` | multi-resolution STFT / mean absolute log10 mel distance, mean over channels |
| ``angle_error_deg`` | great-circle angle between broadband active-intensity directions |
| ``diffuseness_error`` | absolute difference of broadband diffuseness (each clip also records ``input_diffuseness``) |
| ``w_band_error_db`` / ``w_band_bias_db`` | W 1/3-octave band level error (dB), median over (clip, band) pairs; signed |
| ``w_level_error_db`` | the W channel's whole-clip level, reconstruction minus input (dB, signed) |
| ``input_periodicity`` | the input W's periodicity (pitch tracker, energy-weighted over frames): >= 0.5 is "pitched" |

The band error is a median, so clips that come back far too quiet hardly move it; ``w_level_error_db`` shows them.
:func:`steady_tone_check` and :func:`harmonic_note_check` add plane-wave tones and a decaying harmonic note, which
sound-effect clips seldom hold. The share of clips within 3 dB of their level is reported for pitched and unpitched
clips apart, and per class. ``TARGETS`` are codec v2's (issue 18); results and their history: docs/codec.md. With
``--out`` it also writes a plot and ``<name>_examples/`` (inputs and reconstructions of the first clips).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from soundstage.common.audio import load_audio, save_audio
from soundstage.data.manifest import split_records
from soundstage.data.pitched import note_envelope
from soundstage.foa import diffuseness, encode_mono
from soundstage.metrics.audio_metrics import (
    level_error_db,
    mel_distance,
    multi_resolution_stft_distance,
    si_sdr,
    third_octave_band_energy_error_db,
    third_octave_centers,
)
from soundstage.metrics.spatial_metrics import broadband_direction_error_deg

from .model import FOACodec
from .pitch_track import frame_pitch

CHANNELS = ("W", "Y", "Z", "X")
# measure -> (bound, value): "max" an upper bound, "min" a lower one
TARGETS: dict[str, tuple[str, float]] = {
    "angle_error_deg_median": ("max", 2.5), "w_band_error_db_median": ("max", 2.0),
    "w_level_within_3db_fraction": ("min", 0.9),
    # the worst of the steady tones and the harmonic note
    "tones_and_note_level_error_db_abs_max": ("max", 3.0), "tones_and_note_angle_error_deg_max": ("max", 3.0)}
PITCHED_PERIODICITY = 0.5  # a clip whose input periodicity reaches this counts as pitched


@torch.no_grad()
def reconstruct(codec: FOACodec, foa: torch.Tensor) -> torch.Tensor:
    """``(4, T)`` FOA -> its ``(4, T)`` reconstruction through the posterior mean."""
    return codec.decode(codec.encode(foa[None]), length=foa.shape[-1])[0]


@torch.no_grad()
def clip_metrics(codec: FOACodec, foa: torch.Tensor) -> tuple[dict[str, float], np.ndarray, torch.Tensor]:
    """Metrics of one ``(4, T)`` clip, its signed W band level errors ``(bands,)`` in dB (reconstruction minus input;
    NaN for bands below the floor) and the ``(4, T)`` reconstruction."""
    recon = reconstruct(codec, foa)
    sr = codec.sample_rate
    sdr = si_sdr(recon, foa)
    metrics = {f"si_sdr_db_{name}": float(sdr[i]) for i, name in enumerate(CHANNELS)}
    metrics["mrstft_distance"] = float(multi_resolution_stft_distance(recon, foa).mean())
    metrics["mel_distance"] = float(mel_distance(recon, foa, sr).mean())
    metrics["angle_error_deg"] = float(broadband_direction_error_deg(recon, foa))
    metrics["input_diffuseness"] = float(diffuseness(foa, 512, 256))
    metrics["diffuseness_error"] = abs(float(diffuseness(recon, 512, 256)) - metrics["input_diffuseness"])
    metrics["w_level_error_db"] = level_error_db(recon[0], foa[0])
    bands = third_octave_band_energy_error_db(recon[0], foa[0], sr, signed=True).numpy()
    metrics["w_band_error_db"] = float(np.nanmedian(np.abs(bands))) if np.isfinite(bands).any() else math.nan
    metrics["input_periodicity"] = clip_periodicity(foa[0], sr, codec.hop)
    return metrics, bands, recon


def clip_periodicity(w: torch.Tensor, sample_rate: int, hop: int) -> float:
    """Periodicity of a ``(T,)`` mono signal in [0, 1]: the pitch tracker's per-frame periodicity averaged with each
    frame's energy as weight (a steady tone ~1, noise ~0; silence does not count)."""
    frames = -(-w.shape[-1] // hop)
    padded = torch.nn.functional.pad(w.float().cpu(), (0, frames * hop - w.shape[-1]))[None]
    _, periodicity = frame_pitch(padded, sample_rate, hop)
    energy = padded.reshape(frames, hop).square().sum(-1)
    return float((periodicity[0] * energy).sum() / energy.sum().clamp_min(1e-20))


def level_shares(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of clips whose W level is within 3 dB, over all, pitched and unpitched clips, and per class (when the
    clips carry one), with the median signed level error and mean periodicity of each class; None for no clips."""
    def within(group: list[dict[str, Any]]) -> float | None:
        errors = np.array([c["w_level_error_db"] for c in group], dtype=np.float64)
        errors = errors[np.isfinite(errors)]
        return float(np.mean(np.abs(errors) <= 3.0)) if errors.size else None

    pitched = [c for c in clips if c["input_periodicity"] >= PITCHED_PERIODICITY]
    unpitched = [c for c in clips if c["input_periodicity"] < PITCHED_PERIODICITY]
    classes: dict[str, list[dict[str, Any]]] = {}
    for clip in clips:
        if clip.get("class"):
            classes.setdefault(clip["class"], []).append(clip)
    by_class = {name: {"clips": len(group), "w_level_within_3db_fraction": within(group),
                       "w_level_error_db_median": float(np.median([c["w_level_error_db"] for c in group])),
                       "input_periodicity_mean": float(np.mean([c["input_periodicity"] for c in group]))}
                for name, group in sorted(classes.items())}
    return {"w_level_within_3db_fraction": within(clips), "pitched_clips": len(pitched),
            "w_level_within_3db_fraction_pitched": within(pitched), "unpitched_clips": len(unpitched),
            "w_level_within_3db_fraction_unpitched": within(unpitched), "by_class": by_class}


TONE_FREQUENCIES_HZ = (100.0, 250.0, 1000.0, 4000.0, 8000.0)  # issue 18's range: 100 Hz - 8 kHz


def _plane_wave_check(codec: FOACodec, mono: np.ndarray, azimuth_deg: float) -> dict[str, float]:
    """Level error (dB, W) and direction error (deg) of ``mono`` as a plane wave; the first and last 0.25 s are left
    out of both measures so that the clip edges do not count."""
    foa = torch.from_numpy(encode_mono(mono.astype(np.float32), azimuth_deg, 0.0)).float()
    recon = reconstruct(codec, foa).cpu()  # encode moves the input to the codec's device
    edge = round(0.25 * codec.sample_rate)
    inner, inner_recon = foa[:, edge:-edge], recon[:, edge:-edge]
    return {"level_error_db": level_error_db(inner_recon[0], inner[0]),
            "angle_error_deg": float(broadband_direction_error_deg(inner_recon, inner))}


@torch.no_grad()
def steady_tone_check(
    codec: FOACodec, frequencies: tuple[float, ...] = TONE_FREQUENCIES_HZ, azimuth_deg: float = 60.0,
    seconds: float = 2.0,
) -> dict[str, dict[str, float]]:
    """Level error (dB, reconstruction minus input, W) and direction error (deg) of steady plane-wave tones with a W
    RMS of -20 dBFS (the dataset's loudness). Frequencies above 0.45 x the sample rate are skipped."""
    sr = codec.sample_rate
    t = np.arange(round(seconds * sr)) / sr
    return {f"{f:g}_hz": _plane_wave_check(codec, 0.1 * math.sqrt(2.0) * np.sin(2.0 * math.pi * f * t), azimuth_deg)
            for f in frequencies if f < 0.45 * sr}


@torch.no_grad()
def harmonic_note_check(
    codec: FOACodec, f0_hz: float = 220.0, partials: int = 8, decay_s: float = 0.8, azimuth_deg: float = 60.0,
    seconds: float = 2.0,
) -> dict[str, float]:
    """The same measures for a plucked-string-like note: ``partials`` harmonics with amplitudes ``1 / k``, a 5-ms
    attack at 0.3 s and an exponential decay (time constant ``decay_s``); -20 dBFS RMS over the measured part."""
    sr = codec.sample_rate
    t = np.arange(round(seconds * sr)) / sr
    partial_sum = sum(np.sin(2 * math.pi * f0_hz * k * t + k) / k for k in range(1, partials + 1)
                      if f0_hz * k < 0.45 * sr)
    note = note_envelope(t, 0.3, 0.005, decay_s) * partial_sum
    edge = round(0.25 * sr)
    note = note * 0.1 / np.sqrt(np.mean(note[edge:-edge] ** 2))
    return _plane_wave_check(codec, note, azimuth_deg)


def _nan_stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return (float(np.median(arr)), float(np.mean(arr))) if arr.size else (math.nan, math.nan)


def evaluate_codec(
    model: str | Path,
    data_dir: Path,
    split: str = "test",
    out_json: Path | None = None,
    max_clips: int | None = None,
    device: str = "cpu",
    examples: int = 3,
) -> dict[str, Any]:
    """Evaluate a codec folder (or bundled preset name) on a dataset split; prints a table, optionally writes JSON
    (plus a plot and ``examples`` input/reconstruction pairs next to it).

    Returns ``{"summary": {metric_median/mean...}, "targets": {...}, "clips": [...], ...}``.
    """
    codec = FOACodec.from_pretrained(model, device=device)
    data_dir = Path(data_dir)
    records = split_records(data_dir, split, max_clips)
    clips: list[dict[str, Any]] = []
    all_bands: list[np.ndarray] = []
    seconds = 0.0
    example_dir = None if out_json is None else Path(out_json).with_name(Path(out_json).stem + "_examples")
    start = time.perf_counter()
    for i, record in enumerate(tqdm(records, desc=f"evaluate codec ({split})", unit="clip")):
        audio, _ = load_audio(data_dir / record["path"], sample_rate=codec.sample_rate, channels=4)
        foa = torch.from_numpy(audio).to(device)
        metrics, bands, recon = clip_metrics(codec, foa)
        all_bands.append(bands)
        seconds += audio.shape[1] / codec.sample_rate
        clips.append({"path": record["path"], "class": record.get("class", ""), "t30_s": record["t30_s"], **metrics})
        if example_dir is not None and i < examples:
            name = Path(record["path"]).stem
            save_audio(example_dir / f"{name}_input.wav", audio, codec.sample_rate)
            save_audio(example_dir / f"{name}_reconstruction.wav", recon.cpu().numpy(), codec.sample_rate)
    elapsed = time.perf_counter() - start

    summary: dict[str, float] = {}
    for key in clips[0]:
        if key in ("path", "class", "t30_s", "input_diffuseness", "input_periodicity", "w_band_error_db"):
            continue
        median, mean = _nan_stats([c[key] for c in clips])
        summary[f"{key}_median"], summary[f"{key}_mean"] = median, mean
    pooled = np.concatenate([b[np.isfinite(b)] for b in all_bands])  # signed, all (clip, band) pairs
    if pooled.size:
        summary["w_band_error_db_median"] = float(np.median(np.abs(pooled)))
        summary["w_band_error_db_mean"] = float(np.mean(np.abs(pooled)))
        summary["w_band_bias_db_median"] = float(np.median(pooled))  # < 0: too quiet
    else:
        summary.update(w_band_error_db_median=math.nan, w_band_error_db_mean=math.nan, w_band_bias_db_median=math.nan)
    shares = level_shares(clips)
    by_class = shares.pop("by_class")
    summary.update(shares)
    steady_tones, harmonic_note = steady_tone_check(codec), harmonic_note_check(codec)
    plane_waves = [*steady_tones.values(), harmonic_note]
    values = {**summary, "tones_and_note_level_error_db_abs_max": max(abs(r["level_error_db"]) for r in plane_waves),
              "tones_and_note_angle_error_deg_max": max(r["angle_error_deg"] for r in plane_waves)}
    targets = {key: {"bound": bound, "target": target, "value": values[key],
                     "met": values[key] is not None and bool(values[key] <= target if bound == "max"
                                                             else values[key] >= target)}
               for key, (bound, target) in TARGETS.items()}
    result = {
        "model": str(model),
        "data": str(data_dir),
        "split": split,
        "clips_evaluated": len(clips),
        "audio_seconds": seconds,
        "sample_rate": codec.sample_rate,
        "eval_seconds": elapsed,
        "summary": summary,
        "targets": targets,
        "steady_tones": steady_tones,
        "harmonic_note": harmonic_note,
        "classes": by_class,
        "clips": clips,
    }
    print(format_table(result))
    if out_json is not None:
        out_json = Path(out_json)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2) + "\n")
        result["plot"] = str(plot_codec_evaluation(clips, np.abs(np.stack(all_bands)), codec.sample_rate,
                                                   out_json.with_suffix(".png")))
    return result


def plot_codec_evaluation(clips: list[dict[str, Any]], band_errors: np.ndarray, sample_rate: int, path: Path) -> Path:
    """Angle error per clip against the input's diffuseness (colour: T30), and the W band error ``(clips, bands)`` by
    1/3-octave band (median, IQR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    points = left.scatter([c["input_diffuseness"] for c in clips], [c["angle_error_deg"] for c in clips],
                          c=[c["t30_s"] for c in clips], cmap="viridis", s=12, alpha=0.8)
    fig.colorbar(points, ax=left, label="room T30 (s)")
    left.axhline(TARGETS["angle_error_deg_median"][1], color="tab:red", lw=1, ls="--", label="target (median)")
    left.set(xlabel="input broadband diffuseness", ylabel="angle error (deg)", yscale="log",
             title="broadband direction error per clip")
    left.legend()
    centers = third_octave_centers(sample_rate)
    with warnings.catch_warnings():  # bands that are below the floor in every clip give all-NaN columns
        warnings.simplefilter("ignore", RuntimeWarning)
        low, median, high = np.nanpercentile(band_errors, [25, 50, 75], axis=0)
    right.fill_between(centers, low, high, alpha=0.3, label="25-75 %")
    right.semilogx(centers, median, marker="o", ms=3, label="median")
    right.axhline(TARGETS["w_band_error_db_median"][1], color="tab:red", lw=1, ls="--", label="target (median)")
    right.set(xlabel="1/3-octave band (Hz)", ylabel="|level error| (dB)", title="W channel band level error")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = [("metric", "median", "mean")]
    for key in ([f"si_sdr_db_{c}" for c in CHANNELS]
                + ["mrstft_distance", "mel_distance", "angle_error_deg", "diffuseness_error", "w_band_error_db",
                   "w_level_error_db"]):
        rows.append((key, f"{s[f'{key}_median']:.3f}", f"{s[f'{key}_mean']:.3f}"))
    width = max(len(r[0]) for r in rows)
    lines = [(f"codec {result['model']} on {result['split']} ({result['clips_evaluated']} clips, "
             f"{result['audio_seconds']:.1f} s of audio)")]
    lines += [f"{a:<{width}}  {b:>10}  {c:>10}" for a, b, c in rows]
    lines.append(f"{'w_band_bias_db':<{width}}  {s['w_band_bias_db_median']:>10.3f}")
    tones = ", ".join(f"{f.replace('_hz', ' Hz')} {r['level_error_db']:+.1f} dB / {r['angle_error_deg']:.1f} deg"
                      for f, r in result["steady_tones"].items())
    lines.append(f"steady tones (level / direction error): {tones}")
    note = result["harmonic_note"]
    lines.append(f"harmonic note 220 Hz x 8 (level / direction error): {note['level_error_db']:+.1f} dB / "
                 f"{note['angle_error_deg']:.1f} deg")
    def share(key: str) -> str:
        return "n/a" if s[key] is None else f"{s[key]:.1%}"

    lines.append(f"W level within 3 dB: {share('w_level_within_3db_fraction')} of clips; pitched "
                 f"{share('w_level_within_3db_fraction_pitched')} of {s['pitched_clips']}, unpitched "
                 f"{share('w_level_within_3db_fraction_unpitched')} of {s['unpitched_clips']}")
    worst = sorted(result["classes"].items(), key=lambda kv: kv[1]["w_level_within_3db_fraction"] or 0.0)[:5]
    if worst:
        lines.append("classes least often within 3 dB: " + ", ".join(
            f"{name} {c['w_level_within_3db_fraction']:.0%} ({c['w_level_error_db_median']:+.1f} dB)"
            for name, c in worst))
    for key, t in result["targets"].items():
        sign = "<=" if t["bound"] == "max" else ">="
        lines.append(f"target {key} {sign} {t['target']}: {t['value']:.3f} ({'met' if t['met'] else 'NOT met'})")
    return "\n".join(lines)
