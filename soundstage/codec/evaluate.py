"""Codec evaluation on a dataset split: ``soundstage evaluate codec --model DIR --data DIR [--out FILE.json]``.

Every clip is encoded (posterior mean) and decoded at full length, then compared with its input:

| metric | meaning |
|---|---|
| ``si_sdr_db_{W,Y,Z,X}`` | scale-invariant SDR per AmbiX channel (dB, higher is better) |
| ``mrstft_distance`` | multi-resolution STFT distance (spectral convergence + log magnitude), mean over channels |
| ``mel_distance`` | mean absolute log10 mel power difference, mean over channels |
| ``angle_error_deg`` | great-circle angle between broadband active-intensity directions (median and mean) |
| ``diffuseness_error`` | absolute difference of broadband diffuseness |
| ``w_band_error_db`` | W channel 1/3-octave band level error in dB, median over all (clip, band) pairs |

Targets for the bundled ``small`` codec: angle error median <= 5 deg, W band error median <= 3 dB.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundstage.common.audio import load_audio
from soundstage.data.manifest import read_manifest
from soundstage.metrics.audio_metrics import (
    mel_distance,
    multi_resolution_stft_distance,
    si_sdr,
    third_octave_band_energy_error_db,
)
from soundstage.metrics.spatial_metrics import broadband_direction_error_deg, diffuseness_error

from .model import FOACodec

CHANNELS = ("W", "Y", "Z", "X")
TARGETS = {"angle_error_deg_median": 5.0, "w_band_error_db_median": 3.0}  # upper bounds


@torch.no_grad()
def clip_metrics(codec: FOACodec, foa: torch.Tensor) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of one ``(4, T)`` clip and its W band errors ``(bands,)`` in dB (NaN for bands below the floor)."""
    recon = codec.decode(codec.encode(foa[None]), length=foa.shape[-1])[0]
    sr = codec.sample_rate
    sdr = si_sdr(recon, foa)
    metrics = {f"si_sdr_db_{name}": float(sdr[i]) for i, name in enumerate(CHANNELS)}
    metrics["mrstft_distance"] = float(multi_resolution_stft_distance(recon, foa).mean())
    metrics["mel_distance"] = float(mel_distance(recon, foa, sr).mean())
    metrics["angle_error_deg"] = float(broadband_direction_error_deg(recon, foa))
    metrics["diffuseness_error"] = float(diffuseness_error(recon, foa))
    bands = third_octave_band_energy_error_db(recon[0], foa[0], sr).numpy()
    metrics["w_band_error_db"] = float(np.nanmedian(bands)) if np.isfinite(bands).any() else math.nan
    return metrics, bands


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
) -> dict[str, Any]:
    """Evaluate a codec folder (or bundled preset name) on a dataset split; prints a table, optionally writes JSON.

    Returns ``{"summary": {metric_median/mean...}, "targets": {...}, "clips": [...], ...}``.
    """
    codec = FOACodec.from_pretrained(model, device=device)
    data_dir = Path(data_dir)
    records = [r for r in read_manifest(data_dir, spatial=True) if r["split"] == split]
    if not records:
        raise ValueError(f"{data_dir}: the manifest has no clips in split '{split}'")
    if max_clips is not None:
        records = records[:max_clips]
    clips: list[dict[str, Any]] = []
    all_bands: list[np.ndarray] = []
    seconds = 0.0
    start = time.perf_counter()
    for record in records:
        audio, _ = load_audio(data_dir / record["path"], sample_rate=codec.sample_rate, channels=4)
        foa = torch.from_numpy(audio).to(device)
        metrics, bands = clip_metrics(codec, foa)
        all_bands.append(bands[np.isfinite(bands)])
        seconds += audio.shape[1] / codec.sample_rate
        clips.append({"path": record["path"], **metrics})
    elapsed = time.perf_counter() - start

    summary: dict[str, float] = {}
    for key in clips[0]:
        if key == "path" or key == "w_band_error_db":
            continue
        median, mean = _nan_stats([c[key] for c in clips])
        summary[f"{key}_median"], summary[f"{key}_mean"] = median, mean
    pooled = np.concatenate(all_bands) if all_bands else np.array([])
    summary["w_band_error_db_median"] = float(np.median(pooled)) if pooled.size else math.nan
    summary["w_band_error_db_mean"] = float(np.mean(pooled)) if pooled.size else math.nan
    targets = {k: {"target_max": v, "value": summary[k], "met": bool(summary[k] <= v)} for k, v in TARGETS.items()}
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
        "clips": clips,
    }
    print(format_table(result))
    if out_json is not None:
        out_json = Path(out_json)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = [("metric", "median", "mean")]
    for key in ([f"si_sdr_db_{c}" for c in CHANNELS]
                + ["mrstft_distance", "mel_distance", "angle_error_deg", "diffuseness_error", "w_band_error_db"]):
        rows.append((key, f"{s[f'{key}_median']:.3f}", f"{s[f'{key}_mean']:.3f}"))
    width = max(len(r[0]) for r in rows)
    lines = [(f"codec {result['model']} on {result['split']} ({result['clips_evaluated']} clips, "
             f"{result['audio_seconds']:.1f} s of audio)")]
    lines += [f"{a:<{width}}  {b:>10}  {c:>10}" for a, b, c in rows]
    for key, t in result["targets"].items():
        lines.append(f"target {key} <= {t['target_max']}: {t['value']:.3f} ({'met' if t['met'] else 'NOT met'})")
    return "\n".join(lines)
