"""Generation speed: wall time of 5 s of FOA at the default settings, split into conditioning, DiT and decoding.

    python benchmarks/bench_generate.py [--model small|DIR] [--threads 2] [--repeats 3] [--steps 10,16,25]

Loads ``SoundstagePipeline.from_pretrained(MODEL)``, generates once to warm up, then ``--repeats`` times, and reports
the median of each part (``GenerationResult.timings``) at the pipeline's defaults; then the same for each step count
of ``--steps`` with each sampler of ``--samplers`` (Heun costs two DiT evaluations per step but the last), so the
defaults can be chosen. Target (issue 15): <= 2.0 s wall at the defaults on the project's 2-core CPU machine, and
<= 2 GB peak memory for the process. Memory is the process's peak resident set size (``resource.getrusage``
``ru_maxrss``: everything the process ever held, Python, torch and the models included), reported whole and as the
increase over the peak before the model was loaded. Prints a table and writes JSON (``--out``, default
``runs/benchmarks/generate.json``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py (the script's folder)

from soundstage.sample import SoundstagePipeline

TARGET_SECONDS = 2.0
TARGET_MEMORY_MB = 2048.0
PROMPT = {"prompt": "a dog barks", "azimuth_deg": 90.0, "t30_s": 0.4}  # parametric: the lock and every branch run


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_generation(pipe: SoundstagePipeline, seconds: float, repeats: int, **options: Any) -> dict[str, Any]:
    """Median wall seconds of ``repeats`` generations (after one warm-up): total and each part of the pipeline."""
    runs = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        result = pipe(**PROMPT, seconds=seconds, seed=i, progress=False, **options)
        runs.append({**result.timings, "total": time.perf_counter() - start})
    warmup, runs = runs[0], runs[1:]  # the warm-up also encodes the prompt (later runs hit the text cache)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    request = result.requested
    return {"steps": request.steps, "sampler": request.sampler, "cfg_scale": request.cfg_scale,
            "audio_seconds": seconds, "repeats": repeats, "median_seconds": median, "warmup_seconds": warmup,
            "x_realtime": seconds / median["total"], "all_totals": [run["total"] for run in runs]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="bundled model name or generation folder (default: small)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the project machine has 2 cores)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (default 5 s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting, after one warm-up")
    parser.add_argument("--steps", default="10,16,25", help="step counts to compare (comma-separated)")
    parser.add_argument("--samplers", default="euler,heun", help="samplers to compare (comma-separated)")
    add_out_argument(parser, "generate")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    before_load = peak_rss_mb()
    pipe = SoundstagePipeline.from_pretrained(args.model)
    default = time_generation(pipe, args.seconds, args.repeats)
    peak = peak_rss_mb()  # after the default setting: the memory a user's run needs
    sweep = [time_generation(pipe, args.seconds, args.repeats, steps=int(steps), sampler=sampler)
             for sampler in args.samplers.split(",") for steps in args.steps.split(",")]
    results = {
        "model": str(args.model), "model_hash": pipe.model_hash, "threads": torch.get_num_threads(),
        "machine": machine_info(), "prompt": PROMPT, "default": default, "sweep": sweep,
        "memory": {"measure": "ru_maxrss (peak resident set size of the process)", "peak_mb": peak,
                   "peak_before_model_mb": before_load, "increase_mb": peak - before_load,
                   "peak_after_sweep_mb": peak_rss_mb(), "target_mb": TARGET_MEMORY_MB,
                   "meets_target": peak <= TARGET_MEMORY_MB},
        "target": {"wall_seconds": TARGET_SECONDS, "meets": default["median_seconds"]["total"] <= TARGET_SECONDS},
    }

    print(f"generate benchmark: {args.model}, {args.seconds:g} s of FOA, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats} after a warm-up")
    header = f"{'setting':<26}{'total s':>9}{'cond s':>9}{'DiT s':>9}{'decode s':>10}{'x real time':>13}"
    print(header)
    for label, row in [("default", default), *((f"{r['sampler']} {r['steps']} steps", r) for r in sweep)]:
        m = row["median_seconds"]
        name = f"{label} ({row['sampler']}, {row['steps']}, cfg {row['cfg_scale']:g})" if label == "default" else label
        print(f"{name:<26}{m['total']:>9.3f}{m['conditioning']:>9.3f}{m['dit']:>9.3f}{m['decode']:>10.3f}"
              f"{row['x_realtime']:>13.1f}")
    cold = default["warmup_seconds"]
    print(f"first run in the process (cold: text encoder load and first encoding): {cold['total']:.3f} s, of which "
          f"conditioning {cold['conditioning']:.3f} s")
    verdict = "meets" if results["target"]["meets"] else "MISSES"
    print(f"default wall {default['median_seconds']['total']:.3f} s: {verdict} the {TARGET_SECONDS:g} s target")
    mem = results["memory"]
    print(f"peak memory (ru_maxrss) {mem['peak_mb']:.0f} MB ({mem['increase_mb']:+.0f} MB over the {before_load:.0f} MB "
          f"before loading): {'meets' if mem['meets_target'] else 'MISSES'} the {TARGET_MEMORY_MB:.0f} MB target")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
