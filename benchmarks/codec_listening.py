"""Listening page for a codec change: binaural previews of pitched test clips, input / before / after.

Picks the ``--clips`` most periodic clips of a split (one per class; periodicity as ``evaluate codec`` measures it),
takes ``--seconds`` around each clip's loudest part, reconstructs it with both codecs and writes, per clip, three
lossless binaural FLACs (a lossy format would add artefacts of its own to the comparison), one figure of W
spectrograms (rows: clips; columns: input, before, after), a ``README.md`` table with the level errors, each
source's licence (from the dataset manifest) and links, and the JSON.

    python benchmarks/codec_listening.py --before small --after runs/codec_v2_cal --data datasets/sfx_foa_v2 \\
        --out benchmarks/results/codec_small/listening/listening.json
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py
from tqdm.auto import tqdm

from soundstage.codec import FOACodec
from soundstage.codec.evaluate import clip_periodicity, reconstruct
from soundstage.common.audio import load_audio, save_audio
from soundstage.data.manifest import split_records
from soundstage.foa import decode_binaural
from soundstage.metrics.audio_metrics import level_error_db

VERSIONS = ("input", "before", "after")


def loudest_excerpt(foa: torch.Tensor, samples: int) -> torch.Tensor:
    """The ``(4, samples)`` window of ``foa`` with the most W energy (the whole clip when shorter)."""
    if foa.shape[-1] <= samples:
        return foa
    energy = torch.cumsum(torch.nn.functional.pad(foa[0].square(), (1, 0)), 0)
    start = int(torch.argmax(energy[samples:] - energy[:-samples]))
    return foa[:, start:start + samples]


def pick_pitched_clips(data: Path, split: str, count: int, sample_rate: int, hop: int) -> list[dict[str, Any]]:
    """The ``count`` most periodic clips of ``split``, at most one per class, each with its ``input_periodicity``."""
    scored = []
    for record in tqdm(split_records(data, split), desc="periodicity", unit="clip"):
        audio, _ = load_audio(data / record["path"], sample_rate=sample_rate, channels=4)
        scored.append({**record, "input_periodicity": clip_periodicity(torch.from_numpy(audio[0]), sample_rate, hop)})
    chosen, classes = [], set()
    for record in sorted(scored, key=lambda r: -r["input_periodicity"]):
        if record.get("class") not in classes:
            chosen.append(record)
            classes.add(record.get("class"))
        if len(chosen) == count:
            break
    return chosen


def plot_spectrograms(rows: list[dict[str, np.ndarray]], names: list[str], sample_rate: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 2.0 * len(rows)), squeeze=False, sharex=True, sharey=True)
    for r, (row, name) in enumerate(zip(rows, names)):
        top = None
        for c, version in enumerate(VERSIONS):
            power, _freqs, _times, image = axes[r, c].specgram(row[version], NFFT=1024, Fs=sample_rate, noverlap=768,
                                                                scale="dB", cmap="magma")
            top = 10 * np.log10(power.max() + 1e-20) if top is None else top  # the input's peak sets the scale
            image.set_clim(top - 80, top)
            axes[r, c].set_yscale("symlog", linthresh=500)
            axes[r, c].set_ylim(50, sample_rate / 2)
            if r == 0:
                axes[r, c].set_title(version)
        axes[r, 0].set_ylabel(name[:24], fontsize=8)
    fig.supxlabel("time (s)")
    fig.supylabel("frequency (Hz)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="small", help="codec folder or bundled name (default: small)")
    parser.add_argument("--after", required=True, help="codec folder or bundled name")
    parser.add_argument("--data", type=Path, required=True, help="FOA dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="excerpt length around the loudest part")
    add_out_argument(parser, "codec_listening")
    args = parser.parse_args()

    codecs = {"before": FOACodec.from_pretrained(args.before), "after": FOACodec.from_pretrained(args.after)}
    sr = codecs["before"].sample_rate
    if codecs["after"].sample_rate != sr:
        raise SystemExit(f"the codecs run at different rates ({sr} and {codecs['after'].sample_rate} Hz)")
    folder = args.out.parent
    folder.mkdir(parents=True, exist_ok=True)
    chosen = pick_pitched_clips(args.data, args.split, args.clips, sr, codecs["after"].hop)
    clips, rows, names = [], [], []
    for i, record in enumerate(tqdm(chosen, desc="render", unit="clip"), 1):
        audio, _ = load_audio(args.data / record["path"], sample_rate=sr, channels=4)
        foa = loudest_excerpt(torch.from_numpy(audio), round(args.seconds * sr))
        versions = {"input": foa, **{k: reconstruct(codec, foa).cpu() for k, codec in codecs.items()}}
        stem = f"{i:02d}_" + re.sub(r"[^a-z0-9]+", "_", str(record.get("class", "clip")).lower()).strip("_")
        files = {}
        for version, signal in versions.items():
            files[version] = f"{stem}_{version}.binaural.flac"
            save_audio(folder / files[version], decode_binaural(signal.numpy(), sr), sr)
        clips.append({"path": record["path"], "class": record.get("class", ""), "caption": record.get("caption", ""),
                      "source": record.get("source", ""), "licence": record.get("licence", ""),
                      "input_periodicity": record["input_periodicity"], "files": files,
                      **{f"w_level_error_db_{k}": level_error_db(versions[k][0], foa[0]) for k in codecs}})
        rows.append({k: v[0].numpy() for k, v in versions.items()})
        names.append(f"{i:02d} {record.get('class', '')}")
    plot_spectrograms(rows, names, sr, folder / "spectrograms.png")
    lines = [f"# Codec listening page: {args.before} (before) vs {args.after} (after)", "",
             (f"{len(clips)} most periodic clips of the {args.split} split of `{args.data}`, one per class, "
              f"{args.seconds:g} s around each clip's loudest part, rendered binaurally (headphones). "
              "W spectrograms: `spectrograms.png`."), "",
             "| # | class | periodicity | W level before | W level after | input | before | after | source (licence) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, c in enumerate(clips, 1):
        links = " | ".join(f"[{v}]({c['files'][v]})" for v in VERSIONS)
        lines.append(f"| {i} | {c['class']} | {c['input_periodicity']:.2f} | {c['w_level_error_db_before']:+.1f} dB | "
                     f"{c['w_level_error_db_after']:+.1f} dB | {links} | `{c['source']}` ({c['licence']}) |")
    (folder / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    write_results(args.out, {"before": args.before, "after": args.after, "data": str(args.data),
                             "split": args.split, "seconds": args.seconds, "clips": clips,
                             "machine": machine_info()})


if __name__ == "__main__":
    main()
