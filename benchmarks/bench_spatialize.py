"""Spatialisation speed: room-response simulation time and clip throughput with a cached response bank.

- simulation: seconds per FOA response (``simulate_foa_rir`` at 24 kHz, T30 calibration included) over random rooms;
- throughput: 5-s mono clips at 24 kHz through ``spatialize_corpus`` (load, trim, convolve, normalise, caption,
  write FLAC) with the bank already built, one worker: FOA clips per second per core; plus the convolution alone.

Prints a table and writes JSON (``--out``, default ``runs/benchmarks/spatialize.json``).

    python benchmarks/bench_spatialize.py [--rooms 10] [--clips 24]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py (the script's folder)
from scipy.signal import oaconvolve

from soundstage.data.rooms import BankConfig, RirBank, sample_room, simulate_foa_rir
from soundstage.data.spatialize import spatialize_corpus

SAMPLE_RATE = 24000
CLIP_SECONDS = 5.0


def bench_simulation(rooms: int, seed: int = 0) -> dict[str, Any]:
    """Seconds per simulated response over ``rooms`` random rooms (one process)."""
    rng = np.random.default_rng(seed)
    simulate_foa_rir(sample_room(np.random.default_rng(999)), SAMPLE_RATE)  # warm-up: imports, caches
    times, lengths, t30s = [], [], []
    for index in range(rooms):
        spec = sample_room(rng)
        start = time.perf_counter()
        rir = simulate_foa_rir(spec, SAMPLE_RATE, seed=index)
        times.append(time.perf_counter() - start)
        lengths.append(rir.audio.shape[1] / SAMPLE_RATE)
        t30s.append(rir.t30_s)
    return {"rooms": rooms, "mean_s": float(np.mean(times)), "median_s": float(np.median(times)),
            "max_s": float(np.max(times)), "mean_response_s": float(np.mean(lengths)),
            "mean_t30_s": float(np.mean(t30s))}


def _mono_corpus(folder: Path, clips: int) -> None:
    rng = np.random.default_rng(0)
    lines = []
    t = np.arange(int(CLIP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    for i in range(clips):
        audio = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * np.exp(-3.0 * (t % 1.0))
                 + 0.03 * rng.standard_normal(t.size)).astype(np.float32)
        sf.write(folder / f"clip{i}.flac", audio, SAMPLE_RATE)
        lines.append(json.dumps({"path": f"clip{i}.flac", "sample_rate": SAMPLE_RATE, "num_frames": t.size,
                                 "caption": f"a test sound {i}", "source": "synthetic", "licence": "CC0"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def bench_throughput(clips: int, bank_size: int) -> dict[str, Any]:
    """FOA clips per second (one worker) with a prebuilt bank, and the convolution alone."""
    with tempfile.TemporaryDirectory() as tmp:
        mono, out = Path(tmp) / "mono", Path(tmp) / "foa"
        mono.mkdir()
        _mono_corpus(mono, clips)
        bank = RirBank(out / "rir_bank", BankConfig(size=bank_size, sample_rate=SAMPLE_RATE, seed=0))
        bank.build(workers=1, progress=False)
        start = time.perf_counter()
        report = spatialize_corpus(mono, out, per_clip=1, sample_rate=SAMPLE_RATE, seed=0, workers=1,
                                   bank_size=bank_size, progress=False, write_stats=False)
        seconds = time.perf_counter() - start
        signal = np.random.default_rng(1).standard_normal(int(CLIP_SECONDS * SAMPLE_RATE)).astype(np.float32)
        responses = [bank.load(i) for i in range(bank_size)]
        start = time.perf_counter()
        for rir in responses:
            oaconvolve(signal[None, :], rir, axes=-1)
        convolution = (time.perf_counter() - start) / len(responses)
        mean_rir = float(np.mean([r.shape[1] for r in responses]) / SAMPLE_RATE)
    return {"clips": report.written, "clip_seconds": CLIP_SECONDS, "seconds": seconds,
            "clips_per_second_per_core": report.written / seconds,
            "convolution_ms_per_clip": 1000.0 * convolution, "mean_response_s": mean_rir}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--bank-size", type=int, default=12)
    add_out_argument(parser, "spatialize")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    simulation = bench_simulation(args.rooms)
    throughput = bench_throughput(args.clips, args.bank_size)
    result = {"sample_rate": SAMPLE_RATE, "simulation": simulation, "throughput": throughput,
              "machine": machine_info()}
    print(f"{'measurement':<44} {'value':>10}")
    print(f"{'response simulation, mean s/response':<44} {simulation['mean_s']:>10.3f}")
    print(f"{'response simulation, median s/response':<44} {simulation['median_s']:>10.3f}")
    print(f"{'  (mean response length s)':<44} {simulation['mean_response_s']:>10.2f}")
    print(f"{'spatialize 5-s clips, clips/s per core':<44} {throughput['clips_per_second_per_core']:>10.2f}")
    print(f"{'  convolution alone, ms/clip':<44} {throughput['convolution_ms_per_clip']:>10.1f}")
    write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
