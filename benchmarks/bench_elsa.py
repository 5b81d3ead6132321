"""ELSA speed on CPU: audio embeddings per second (10-s FOA clips) and text embeddings per second.

- audio: ``embed_audio`` on 10-s 4-channel clips at the model's rate (features + both CNN branches + projection),
  batch 1 and batch 8; clips per second and the real-time factor (audio seconds per wall second);
- text: ``embed_text`` on captions never seen before (the frozen text model runs), batch 64, and on captions already
  in the feature cache (only the projection runs, as during training).

Uses the bundled small model when it exists, else a randomly initialised small model (same speed). Prints a table
and writes JSON (``--out``, default ``runs/benchmarks/elsa.json``).

    python benchmarks/bench_elsa.py [--threads 2] [--seconds 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py (the script's folder)

from soundstage.common.pretrained import PRETRAINED_ROOT
from soundstage.elsa_encoder import ELSA, elsa_preset


def _rate(fn: Callable[[int], int], repeats: int) -> tuple[float, float]:
    """(items per second: median over repeats, seconds per call: median); ``fn(i)`` runs once, returns its items."""
    fn(-1)  # warm-up: allocations, lazy loads
    rates, times = [], []
    for i in range(repeats):
        start = time.perf_counter()
        items = fn(i)
        elapsed = time.perf_counter() - start
        rates.append(items / elapsed)
        times.append(elapsed)
    return float(np.median(rates)), float(np.median(times))


def bench_audio(model: ELSA, seconds: float, batch: int, repeats: int) -> dict[str, Any]:
    sr = model.config.sample_rate
    foa = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal((batch, 4, int(seconds * sr))))
                           .astype(np.float32))

    def run(_: int) -> int:
        with torch.inference_mode():
            model.embed_audio(foa, sr)
        return batch

    per_second, per_call = _rate(run, repeats)
    return {"batch": batch, "clip_seconds": seconds, "clips_per_s": per_second, "seconds_per_batch": per_call,
            "real_time_factor": per_second * seconds}


def bench_text(model: ELSA, batch: int, repeats: int, cached: bool) -> dict[str, Any]:
    encoder = model.text_encoder

    def captions(i: int) -> list[str]:
        tag = 0 if cached else i + 2  # new captions each call unless measuring the cache
        return [f"A dog barks far to the left of a large, highly reverberant room, take {tag}-{j}."
                for j in range(batch)]

    if cached:
        model.embed_text(captions(0))

    def run(i: int) -> int:
        if not cached:
            encoder.clear_cache()
        with torch.inference_mode():
            model.embed_text(captions(i))
        return batch

    per_second, per_call = _rate(run, repeats)
    return {"batch": batch, "cached": cached, "texts_per_s": per_second, "seconds_per_batch": per_call}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds")
    parser.add_argument("--repeats", type=int, default=5)
    add_out_argument(parser, "elsa")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    bundled = (PRETRAINED_ROOT / "small" / "elsa" / "config.json").exists()
    model = ELSA.from_pretrained("small") if bundled else ELSA(elsa_preset("small")).eval()
    params = sum(p.numel() for p in model.parameters())
    results = {
        "model": "bundled small" if bundled else "small preset, random weights",
        "parameters": params,
        "threads": args.threads,
        "machine": machine_info(),
        "audio": [bench_audio(model, args.seconds, b, args.repeats) for b in (1, 8)],
        "text": [bench_text(model, 64, args.repeats, cached=False), bench_text(model, 64, args.repeats, cached=True)],
    }
    print(f"ELSA small ({params / 1e6:.2f} M parameters, {results['model']}), {args.threads} CPU threads")
    print(f"{'task':<40}{'per second':>14}{'s per batch':>14}{'x real time':>13}")
    for r in results["audio"]:
        name = f"audio, {r['clip_seconds']:g}-s clips, batch {r['batch']}"
        print(f"{name:<40}{r['clips_per_s']:>14.2f}"
              f"{r['seconds_per_batch']:>14.3f}{r['real_time_factor']:>13.1f}")
    for r in results["text"]:
        name = f"text, batch {r['batch']}, {'cached features' if r['cached'] else 'new captions'}"
        print(f"{name:<40}{r['texts_per_s']:>14.1f}{r['seconds_per_batch']:>14.3f}{'':>13}")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
