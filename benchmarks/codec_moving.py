"""Codecs on moving reverberant sound fields: does a codec keep a source's path through a real room?

Each of the first ``--clips`` clips of a split (cut to 4 s) is turned into a moving field by a yaw that grows
sample by sample from 0 to ``--sweep`` degrees (the whole field turns: direct sound and reflections, as when the
source and its room move around the listener); each codec encodes and decodes it (posterior mean). Per clip: the
median, over the 40-ms frames within 30 dB of the loudest (``gated_framewise_doa``) in both, of the great circle
between the reconstruction's frame DOA and the input's; and the input's median framewise diffuseness. Separates the
codec from the generator when a model follows a trajectory less closely than another.

    python benchmarks/codec_moving.py --data datasets/sfx_foa --codec small --codec runs/codec_v5_cal [--clips 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py
from tqdm.auto import tqdm

from soundstage.codec import FOACodec
from soundstage.codec.evaluate import reconstruct
from soundstage.common.audio import load_audio
from soundstage.data.manifest import split_records
from soundstage.foa import great_circle_deg
from soundstage.foa.encoding import XYZ
from soundstage.metrics.spatial_metrics import gated_framewise_diffuseness, gated_framewise_doa

CLIP_SECONDS = 4.0


def yaw_sweep(foa: np.ndarray, end_deg: float) -> np.ndarray:
    """AmbiX ``(4, T)`` turned about the vertical axis by a yaw rising linearly from 0 to ``end_deg`` over the clip."""
    yaw = np.radians(np.linspace(0.0, end_deg, foa.shape[-1]))
    x, y, _ = (foa[c] for c in XYZ)
    out = foa.copy()
    out[XYZ[0]], out[XYZ[1]] = np.cos(yaw) * x - np.sin(yaw) * y, np.sin(yaw) * x + np.cos(yaw) * y
    return out


def path_error_deg(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Median great circle between the two clips' frame DOAs over the frames both gates keep (NaN if none)."""
    az_r, el_r, keep_r = gated_framewise_doa(reference, sample_rate)
    az_e, el_e, keep_e = gated_framewise_doa(estimate, sample_rate)
    n = min(az_r.size, az_e.size)
    keep = keep_r[:n] & keep_e[:n]
    if not keep.any():
        return float("nan")
    return float(np.median(great_circle_deg(az_r[:n][keep], el_r[:n][keep], az_e[:n][keep], el_e[:n][keep])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=40, help="the first N clips of the split")
    parser.add_argument("--codec", action="append", required=True, help="codec folder or bundled name (repeatable)")
    parser.add_argument("--sweep", type=float, default=-180.0, help="yaw at the clip's end, degrees")
    parser.add_argument("--threads", type=int, default=None)
    add_out_argument(parser, "codec_moving")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    records = split_records(args.data, args.split, args.clips)
    result: dict = {"data": str(args.data), "split": args.split, "clips": len(records), "sweep_deg": args.sweep,
                    "clip_seconds": CLIP_SECONDS, "codecs": {}}
    for name in args.codec:
        codec = FOACodec.from_pretrained(name).eval()
        sr = codec.sample_rate
        errors, diffuseness = [], []
        for record in tqdm(records, desc=f"codec {name}", unit="clip"):
            foa, _ = load_audio(args.data / record["path"], sample_rate=sr)
            moving = yaw_sweep(foa[:, : round(CLIP_SECONDS * sr)], args.sweep)
            with torch.no_grad():
                decoded = reconstruct(codec, torch.from_numpy(moving)).numpy()
            errors.append(path_error_deg(moving, decoded, sr))
            diffuseness.append(gated_framewise_diffuseness(moving, sr))
        result["codecs"][name] = {"median_of_clip_medians_deg": float(np.nanmedian(errors)),
                                  "input_framewise_diffuseness_median": float(np.median(diffuseness)),
                                  "clip_medians_deg": errors, "input_framewise_diffuseness": diffuseness}
        print(f"{name}: path error {np.nanmedian(errors):.2f} deg (median of {len(errors)} clips), "
              f"input framewise diffuseness {np.median(diffuseness):.2f}")
    result["machine"] = machine_info()
    write_results(args.out, result)


if __name__ == "__main__":
    main()
