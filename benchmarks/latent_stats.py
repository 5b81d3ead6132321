"""Per-channel statistics of a latent folder (``soundstage data encode`` output): what a generator learns on.

For every latent channel of the chosen split's items (whole clips, posterior means normalised as the folder's codec
normalises them: per-channel statistics when it has them, else its single ``latent_scale``): mean, standard
deviation, the posterior std's median, and the channel's share of the total variance; plus the correlation between
channels (largest off-diagonal pairs). A codec whose channels differ much in spread wants per-channel normalisation
rather than one scale (issue 18).

    python benchmarks/latent_stats.py --data datasets/sfx_latents_v2 --split train [--out FILE.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py
from safetensors.torch import load_file
from tqdm.auto import tqdm

from soundstage.data.latents import read_latents_info
from soundstage.data.manifest import split_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="latent folder (soundstage data encode --out)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--max-items", type=int, default=None, help="only the first N items of the split")
    add_out_argument(parser, "latent_stats")
    args = parser.parse_args()

    info = read_latents_info(args.data)
    records = split_records(args.data, args.split, args.max_items)
    c = info.latent_channels
    offset, gain = (v.double().numpy()[:, None] for v in (info.normalizer.offset, info.normalizer.gain))
    total, total_sq, cross, count = np.zeros(c), np.zeros(c), np.zeros((c, c)), 0
    posterior_std: list[np.ndarray] = []
    for record in tqdm(records, desc="latent stats", unit="item"):
        tensors = load_file(str(args.data / record["path"]))
        mean = (tensors["mean"].double().numpy() - offset) * gain  # (C, L)
        total += mean.sum(1)
        total_sq += np.square(mean).sum(1)
        cross += mean @ mean.T
        count += mean.shape[1]
        posterior_std.append(np.median(tensors["std"].double().numpy() * gain, axis=1))
    mu = total / count
    var = total_sq / count - mu**2
    cov = cross / count - np.outer(mu, mu)
    sd = np.sqrt(np.maximum(var, 1e-24))
    corr = cov / np.outer(sd, sd)
    pairs = sorted(((abs(corr[i, j]), i, j) for i in range(c) for j in range(i + 1, c)), reverse=True)[:8]
    channels = [{"channel": i, "mean": float(mu[i]), "std": float(sd[i]),
                 "posterior_std_median": float(np.median([s[i] for s in posterior_std])),
                 "variance_share": float(var[i] / var.sum())} for i in range(c)]
    result = {
        "data": str(args.data), "split": args.split, "items": len(records), "frames": int(count),
        "codec_fingerprint": info.codec_fingerprint, "latent_scale": info.latent_scale,
        "per_channel_normalisation": bool(info.latent_mean),
        "note": "normalised posterior means (as the codec's encode returns them); the last 3 channels are the "
                "direction track",
        "channels": channels,
        "std_ratio_max_to_min": float(sd.max() / sd.min()),
        "largest_correlations": [{"channels": [i, j], "correlation": float(corr[i, j])} for _, i, j in pairs],
        "machine": machine_info(),
    }
    how = "per-channel statistics" if info.latent_mean else f"latent_scale {info.latent_scale:.4f}"
    print(f"{len(records)} items, {count} frames, normalised by {how}")
    print("channel    mean     std   post.std  var share")
    for ch in channels:
        print(f"{ch['channel']:>7} {ch['mean']:+7.3f} {ch['std']:7.3f} {ch['posterior_std_median']:9.4f} "
              f"{ch['variance_share']:9.1%}")
    print(f"std max / min: {result['std_ratio_max_to_min']:.1f}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
