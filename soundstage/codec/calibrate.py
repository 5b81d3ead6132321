"""Export-time calibration of a trained codec: ``soundstage calibrate codec --model DIR --data DIR --out DIR``.

Two measurements on held-out clips (the ``valid`` split), both stored in the codec's config, weights unchanged:
the output equaliser (below) and the per-channel latent statistics that normalise what ``encode`` returns for a
diffusion model (:func:`calibrate_latent_statistics`, :mod:`.latent_norm`); ``calibration.json`` beside the config
reports both.

A decoder that invents its phase is systematically too quiet, by an amount that depends on frequency (overlapping
frames whose phases do not cohere keep 2/3 of their power, and more is lost at the lowest bins, where the Hann main
lobe spans several bins). Like ``latent_scale``, the correction is measured after training on held-out clips (the
``valid`` split): the median signed W level error in each 1/3-octave band becomes the codec's output equaliser
(``FOACodecConfig.output_eq_hz/db``), one gain per frequency for all four channels, so it changes levels and leaves
every bin's direction (the X, Y, Z gains relative to W) as it was. Measured effect: docs/codec.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from soundstage.common.audio import load_audio
from soundstage.common.errors import UsageError
from soundstage.data.manifest import split_records
from soundstage.foa import rotate_foa
from soundstage.metrics.audio_metrics import third_octave_band_energy_error_db, third_octave_centers

from .evaluate import reconstruct
from .model import FOACodec, measure_codec_latent_statistics

CALIBRATION_REPORT = "calibration.json"  # beside the calibrated codec's config: what was measured, on what


@torch.no_grad()
def calibrate_output_eq(codec: FOACodec, clips: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Measure the codec's W level error per 1/3-octave band on ``clips`` (each ``(4, T)``) and fold its median
    into the output equaliser (on top of any equaliser already set). Returns the bands, the new gains and the
    median signed error before calibration (dB)."""
    codec.eval()
    sr = codec.sample_rate
    centres = third_octave_centers(sr)
    errors = []
    for foa in clips:
        foa = codec.check_audio(foa)[0]
        errors.append(third_octave_band_energy_error_db(reconstruct(codec, foa)[0], foa[0], sr, signed=True).cpu())
    if not errors:
        raise ValueError("calibrate_output_eq needs at least one clip")
    stacked = torch.stack(errors).numpy().astype(np.float64)  # (clips, bands), NaN where a band is silent
    measured = np.isfinite(stacked).any(0)
    median = np.zeros(len(centres))
    median[measured] = np.nanmedian(stacked[:, measured], axis=0)
    config = codec.config
    current = (np.interp(np.log(centres), np.log(config.output_eq_hz), config.output_eq_db)
               if config.output_eq_hz else np.zeros(len(centres)))
    gains = current - median
    codec.set_output_eq(centres.tolist(), np.round(gains, 3).tolist())
    pooled = stacked[np.isfinite(stacked)]
    return {"hz": centres.tolist(), "db": codec.config.output_eq_db, "clips": len(errors),
            "bias_before_db": float(np.median(pooled)) if pooled.size else float("nan")}


def calibrate_latent_statistics(codec: FOACodec, clips: Iterable[torch.Tensor], seed: int = 0) -> dict[str, Any]:
    """Measure the per-channel mean and std of the raw posterior means of ``clips`` (each ``(4, T)``) and set them
    on the codec. Each clip is first turned to a random yaw (seeded), as ``soundstage data encode`` turns the DiT's
    training clips, so that the direction channels' statistics do not carry the split's azimuth bias. Returns the
    statistics per channel and how their spread compares with the pooled ``latent_scale``'s."""
    rng = np.random.default_rng(seed)
    mean, std = measure_codec_latent_statistics(
        codec, (rotate_foa(clip, yaw_deg=float(rng.uniform(-180.0, 180.0))) for clip in clips))
    codec.set_latent_statistics(mean, std)
    pooled = float(codec.latent_scale)
    return {"channels": [{"channel": i, "mean": m, "std": s, "std_times_latent_scale": s * pooled}
                         for i, (m, s) in enumerate(zip(mean, std))],
            "std_ratio_max_to_min": max(std) / min(std), "seed": seed}


def calibrate_codec(model: str | Path, data_dir: Path, out_dir: Path, split: str = "valid",
                    max_clips: int | None = None) -> dict[str, Any]:
    """Calibrate a codec folder (or bundled name) on a dataset split and save it, weights unchanged, to ``out_dir``."""
    codec = FOACodec.from_pretrained(model)
    if codec.config.arch != "stft":
        raise UsageError(f"{model}: only the frame-rate (stft) codec has an output equaliser to calibrate")
    data_dir = Path(data_dir)
    records = split_records(data_dir, split, max_clips)

    def clips(what: str) -> Iterable[torch.Tensor]:
        for r in tqdm(records, desc=f"{what} ({split})", unit="clip"):
            yield torch.from_numpy(load_audio(data_dir / r["path"], sample_rate=codec.sample_rate, channels=4)[0])

    result = calibrate_output_eq(codec, clips("output level"))
    result["latent_statistics"] = calibrate_latent_statistics(codec, clips("latent statistics"))
    codec.save_pretrained(out_dir)
    result.update(model=str(model), data=str(data_dir), split=split)
    (Path(out_dir) / CALIBRATION_REPORT).write_text(json.dumps(result, indent=2) + "\n")
    print(f"W level error before calibration (median over clips and bands): {result['bias_before_db']:+.2f} dB")
    print("output equaliser, dB:", " ".join(f"{hz:g}:{db:+.1f}" for hz, db in zip(result["hz"], result["db"])))
    print("latent channel statistics (raw posterior means; encode now returns (mean - m) / s):")
    print("channel        m        s")
    for ch in result["latent_statistics"]["channels"]:
        print(f"{ch['channel']:>7} {ch['mean']:+8.3f} {ch['std']:8.4f}")
    print(f"saved the calibrated codec to {out_dir} (measurements: {CALIBRATION_REPORT})")
    return result
