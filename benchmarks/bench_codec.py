"""Codec speed: encode+decode real-time factor of the small codec and training steps/s of small and paper.

    python benchmarks/bench_codec.py [--threads N] [--model DIR] [--paper-steps 1] [--skip-paper]

Prints a table and writes JSON (``--out``, default ``runs/benchmarks/codec.json``). The small codec must run
encode+decode of 10 s of FOA at >= 20x real time on the project's 2-core CPU machine. Training steps use the real loss
(multi-resolution STFT, spatial, KL) and AdamW: small with batch 8 x 2 s at 24 kHz; paper (156 M-parameter 4-channel
Oobleck at 48 kHz) is far too slow for a CPU, so it is timed on fewer, smaller batches and also reported per second of
training audio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py (the script's folder)

from soundstage.codec import CODEC_PRESETS, FOACodec
from soundstage.codec.losses import CodecLoss


def realtime_factor(codec: FOACodec, seconds: float = 10.0, repeats: int = 3, warmup: bool = True) -> dict[str, float]:
    foa = 0.1 * torch.randn(1, 4, int(seconds * codec.sample_rate))
    with torch.inference_mode():
        if warmup:
            codec.decode(codec.encode(foa), foa.shape[-1])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            codec.decode(codec.encode(foa), foa.shape[-1])
            times.append(time.perf_counter() - start)
    best = min(times)
    return {"audio_seconds": seconds, "encode_decode_seconds": best, "x_realtime": seconds / best}


def training_speed(codec: FOACodec, batch: int, seconds: float, steps: int, warmup: int = 1) -> dict[str, float]:
    codec.train()
    loss_fn = CodecLoss()
    optimizer = torch.optim.AdamW(codec.parameters(), lr=1e-4)
    foa = 0.1 * torch.randn(batch, 4, int(seconds * codec.sample_rate))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        recon, mean, std = codec(foa)
        loss, _ = loss_fn(recon, foa, mean, std)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    per_step = sum(times) / len(times)
    return {"batch": batch, "crop_seconds": seconds, "sample_rate": codec.sample_rate, "timed_steps": steps,
            "seconds_per_step": per_step, "steps_per_second": 1.0 / per_step,
            "training_audio_seconds_per_second": batch * seconds / per_step}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the project machine has 2 cores)")
    parser.add_argument("--small-steps", type=int, default=5)
    parser.add_argument("--paper-steps", type=int, default=1)
    parser.add_argument("--paper-batch", type=int, default=1)
    parser.add_argument("--paper-seconds", type=float, default=1.0)
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="time this codec folder (e.g. a candidate with the harmonic branch) instead of the small "
                             "preset's architecture")
    add_out_argument(parser, "codec")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    results: dict[str, object] = {"threads": args.threads, "machine": machine_info()}
    small = (FOACodec(CODEC_PRESETS["small"]) if args.model is None else FOACodec.from_pretrained(args.model)).eval()
    results["small_model"] = args.model or "preset small (random weights)"
    results["small_parameters"] = small.num_parameters()
    results["small_encode_decode_10s"] = realtime_factor(small)
    results["small_train"] = training_speed(small, batch=8, seconds=2.0, steps=args.small_steps)
    if not args.skip_paper:
        paper = FOACodec(CODEC_PRESETS["paper"])
        results["paper_parameters"] = paper.num_parameters()
        results["paper_encode_decode"] = realtime_factor(paper, seconds=2.0, repeats=1, warmup=False)
        results["paper_train"] = training_speed(paper, batch=args.paper_batch, seconds=args.paper_seconds,
                                                steps=args.paper_steps, warmup=0)

    rows = [("measurement", "value")]
    rows.append(("small parameters", f"{results['small_parameters'] / 1e6:.2f} M"))
    rt = results["small_encode_decode_10s"]
    rows.append(("small encode+decode 10 s", (f"{rt['encode_decode_seconds']:.3f} s = {rt['x_realtime']:.1f}x real time"
                 f" ({'meets' if rt['x_realtime'] >= 20 else 'BELOW'} 20x)")))
    tr = results["small_train"]
    rows.append(("small train step (8 x 2 s, 24 kHz)", f"{tr['seconds_per_step']:.3f} s = {tr['steps_per_second']:.2f} steps/s"))
    if "paper_train" in results:
        rows.append(("paper parameters", f"{results['paper_parameters'] / 1e6:.1f} M"))
        rt = results["paper_encode_decode"]
        rows.append(("paper encode+decode 2 s (48 kHz)", f"{rt['encode_decode_seconds']:.2f} s = {rt['x_realtime']:.2f}x real time"))
        tr = results["paper_train"]
        rows.append((f"paper train step ({tr['batch']} x {tr['crop_seconds']:g} s, 48 kHz)",
                     (f"{tr['seconds_per_step']:.2f} s = {tr['steps_per_second']:.3f} steps/s; "
                     f"~{8 * 2.0 / tr['training_audio_seconds_per_second']:.0f} s for 8 x 2 s")))
    width = max(len(r[0]) for r in rows)
    print(f"codec benchmark, {args.threads} threads")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
