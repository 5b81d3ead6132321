"""``soundstage evaluate generated`` on three sets side by side: the generator, the real clips, the codec.

From one dataset folder (``--data``):

1. **generated**: one parametric request per ``--split`` clip (its caption as the prompt, its labels as the numbers,
   its spatial caption copied along for spatial CLAP, ``seconds = min(clip, 5 s)``, seed = clip index), made with
   ``soundstage generate --batch`` semantics (``generate_batch``; a re-run skips finished clips);
2. **real**: the ``--split`` clips themselves, labels as requests (the ceiling: every measure's value for real audio,
   and the direction estimator's own error);
3. **codec**: the model's codec's reconstruction of each ``--split`` clip (posterior mean, full length), written as a
   dataset folder with the original labels.

The clips go to ``--work`` (default ``runs/evaluate_generated/<dataset>_<model hash>``: another model never reuses
them; a re-run of the same model skips the clips it has).

Each is scored against the ``--ref-split`` clips of the same dataset (default ``valid``: real clips that none of the
three contains, so "real" measures how far two real sets of this size lie apart). Prints the table, writes
``summary.json`` + ``table.md`` (three columns; ``timing.json`` with ``--timing``) and, per set, ``<set>.json`` (per-clip values) and ``<set>/`` plots to
``--out-dir`` (default ``runs/benchmarks/evaluate_generated``; the committed copy is
``benchmarks/results/evaluate_generated``). ``--timing N`` also times the evaluation of N four-second clips (cut
from the training split) against the reference split already in the cache, cold and again warm.

    python benchmarks/evaluate_generated.py --data datasets/sfx_foa [--out-dir benchmarks/results/evaluate_generated]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from results_io import ROOT, machine_info  # benchmarks/results_io.py (the script's folder)
from tqdm.auto import tqdm

from soundstage.codec import FOACodec
from soundstage.common.audio import audio_info, load_audio, save_audio
from soundstage.data.manifest import read_manifest, write_manifest
from soundstage.evaluation.clips import default_cache_dir
from soundstage.evaluation.generated import TABLE_ROWS, evaluate_generated, table_value
from soundstage.sample import SoundstagePipeline, generate_batch

LABELS = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")
SETS = ("generated", "real", "codec")


def write_prompts(records: list[dict[str, Any]], split: str, path: Path, max_seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i, r in enumerate(records):
            row = {"id": f"{split}{i:04d}", "prompt": r["caption"], "mode": "parametric",
                   **{k: float(r[k]) for k in LABELS},
                   "seconds": round(min(r["num_frames"] / r["sample_rate"], max_seconds), 3), "seed": i,
                   "spatial_caption": r["spatial_caption"], "class": r.get("class"), "reference_path": r["path"]}
            handle.write(json.dumps(row) + "\n")
    return path


def generate(pipe: SoundstagePipeline, prompts: Path, out_dir: Path) -> Path:
    report = generate_batch(pipe, prompts, out_dir)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} generation rows failed: {report.failed[:3]}")
    return out_dir


@torch.no_grad()
def reconstruct(codec: FOACodec, data: Path, records: list[dict[str, Any]], out_dir: Path) -> Path:
    """The codec's reconstruction of each clip as ``out_dir/audio/<i>.wav`` + a dataset manifest (same labels)."""
    rate = codec.config.sample_rate
    rows = []
    for i, record in enumerate(tqdm(records, desc="codec reconstructions", unit="clip")):
        path = out_dir / f"audio/{i:04d}.wav"
        if not path.is_file():
            foa, _ = load_audio(data / record["path"], sample_rate=rate, channels=4)
            recon = codec.decode(codec.encode(torch.from_numpy(foa)[None]), length=foa.shape[-1])[0].numpy()
            save_audio(path, recon, rate, subtype="FLOAT")
        rows.append({**record, "path": str(path.relative_to(out_dir)), "sample_rate": rate,
                     "num_frames": audio_info(path).num_frames, "source_path": record["path"]})
    write_manifest(out_dir, rows)
    return out_dir


def timing_set(data: Path, count: int, out_dir: Path, seconds: float = 4.0) -> Path:
    """``count`` clips of exactly ``seconds`` (training-split clips cut or zero-padded; cycling when fewer), as a
    batch-style folder whose requests are the labels."""
    records = [r for r in read_manifest(data, spatial=True) if r["split"] == "train"]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in tqdm(range(count), desc=f"{count} clips of {seconds:g} s", unit="clip"):
        record = records[i % len(records)]
        path = out_dir / f"t{i:04d}.wav"
        if not path.is_file():
            foa, rate = load_audio(data / record["path"], channels=4)
            length = round(seconds * rate)
            foa = np.pad(foa[:, :length], ((0, 0), (0, max(0, length - foa.shape[-1]))))
            if i >= len(records):  # a repeated clip is turned so that its file (and hash) differs
                foa = np.roll(foa, 997 * (i // len(records)), axis=-1)
            save_audio(path, foa, rate, subtype="FLOAT")
        rows.append({"id": path.stem, "prompt": record["spatial_caption"], "path": path.name,
                     **{k: float(record[k]) for k in LABELS}})
    (out_dir / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out_dir


def side_by_side(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    counts = " | ".join(f"{r['n_gen']} vs {r['n_ref']}" for r in results.values())
    lines.append(f"| clips (set vs reference) | {counts} |")
    for key, label, digits in TABLE_ROWS:
        cells = []
        for r in results.values():
            value = table_value(r, key)
            cells.append("n/a" if value is None else f"{value:.{digits}f}")
        lines.append(f"| {label.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("datasets/sfx_foa"))
    parser.add_argument("--split", default="test", help="the clips the three sets are made from")
    parser.add_argument("--ref-split", default="valid", help="the reference clips")
    parser.add_argument("--model", default="small", help="generation model (codec/, dit/, elsa/)")
    parser.add_argument("--max-seconds", type=float, default=5.0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the clips (default runs/evaluate_generated/"
                                                                "<dataset name>_<model hash>)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "benchmarks" / "evaluate_generated")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default: the command's)")
    parser.add_argument("--timing", type=int, default=0, metavar="N", help="also time N four-second clips")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = SoundstagePipeline.from_pretrained(args.model)
    work = args.work or ROOT / "runs" / "evaluate_generated" / f"{args.data.name}_{pipe.model_hash}"
    records = [r for r in read_manifest(args.data, spatial=True) if r["split"] == args.split]
    sets = {
        "generated": (generate(pipe, write_prompts(records, args.split, work / "prompts.jsonl", args.max_seconds),
                               work / "generated"), None),
        "real": (args.data, args.split),
        "codec": (reconstruct(pipe.codec, args.data, records, work / "codec"), None),
    }
    cache = args.cache if args.cache is not None else "default"
    results, summary = {}, {}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, (folder, split) in sets.items():
        print(f"\n== {name}: {folder} ==")
        r = evaluate_generated(folder, args.data, out=args.out_dir / f"{name}.json", plots=args.out_dir / name,
                               gen_split=split, ref_split=args.ref_split, elsa=args.model, cache_dir=cache)
        print(r["table"])
        results[name] = r
        summary[name] = {k: v for k, v in r.items() if k not in ("clips", "table", "details")}
        for key in ("plots", "results_json"):
            if key in summary[name]:
                summary[name][key] = json.loads(json.dumps(summary[name][key]).replace(str(ROOT) + "/", ""))
    table = side_by_side(results)
    timing: dict[str, Any] = {}
    if args.timing:
        folder = timing_set(args.data, args.timing, work / f"timing_{args.timing}")
        timing_cache = work / "timing_cache"
        if timing_cache.exists():
            shutil.rmtree(timing_cache)
        # the reference set is embedded once (as any user's cache would hold it: a copy of the cache the three sets
        # above filled, which never holds the timing clips); then the N clips cold, and again warm
        source = args.cache if args.cache is not None else default_cache_dir()
        if source.is_dir():
            shutil.copytree(source, timing_cache)
        evaluate_generated(args.data, args.data, out=work / "timing_ref.json", gen_split=args.ref_split,
                           ref_split=args.ref_split, elsa=args.model, cache_dir=timing_cache, progress=False)
        for run in ("cold", "warm"):
            started = time.perf_counter()
            r = evaluate_generated(folder, args.data, out=work / f"timing_{run}.json", ref_split=args.ref_split,
                                   elsa=args.model, cache_dir=timing_cache, progress=True)
            timing[run] = {"clips": r["n_gen"], "ref_clips": r["n_ref"], "wall_s": time.perf_counter() - started,
                           "embed_s": r["timing"]["embed_s"], "cpu_s": r["timing"]["cpu_s"],
                           "cache_hits": r["timing"]["cache_hits"], "cache_misses": r["timing"]["cache_misses"],
                           "load_average_1min_after": os.getloadavg()[0]}
        print("\ntiming: " + json.dumps(timing))
    out = {"data": str(args.data), "split": args.split, "ref_split": args.ref_split, "model": args.model,
           "machine": machine_info(), "sets": summary}
    (args.out_dir / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    if timing:  # its own file, so that a run without --timing keeps the last measurement
        (args.out_dir / "timing.json").write_text(json.dumps({"machine": machine_info(), **timing}, indent=2) + "\n")
    (args.out_dir / "table.md").write_text(
        f"Against the {args.ref_split} split of {args.data.name}; sets made from its {args.split} split.\n\n"
        + table + "\n")
    print("\n" + table)
    print(f"wrote {args.out_dir}")
    return out


if __name__ == "__main__":
    main()
