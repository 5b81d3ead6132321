"""Check the spatial labels of an FOA dataset against the audio.

(a) Every stored room response of the dataset's bank: the direct path's time-domain intensity direction versus the
    geometric label (great-circle error, degrees).
(b) Clips of one split: broadband active-intensity DOA (``soundstage.foa.broadband_doa``) of the reverberant clip
    versus its label: median great-circle error and median signed azimuth / elevation error, overall and by T30.

Prints a table and writes JSON (``--out``, default ``runs/benchmarks/labels.json``).

    python benchmarks/check_labels.py --data datasets/sfx_foa --split test
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from results_io import add_out_argument, write_results  # benchmarks/results_io.py (the script's folder)

from soundstage.common.audio import load_audio
from soundstage.data.manifest import read_manifest
from soundstage.data.rooms import RirBank, direct_path_doa
from soundstage.foa import broadband_doa, great_circle_deg, wrap_degrees

logger = logging.getLogger(__name__)

T30_BANDS = (("T30 < 0.5 s", 0.0, 0.5), ("0.5 <= T30 <= 1 s", 0.5, 1.0), ("T30 > 1 s", 1.0, math.inf))


def check_bank(bank_dir: Path) -> dict[str, Any]:
    """Direct-path direction of every stored response versus its label (degrees)."""
    bank = RirBank.open(bank_dir)
    errors = []
    for record in bank.records:
        azimuth, elevation, _ = direct_path_doa(bank.load(record["index"]), bank.config.sample_rate)
        errors.append(great_circle_deg(azimuth, elevation, record["azimuth_deg"], record["elevation_deg"]))
    values = np.asarray(errors)
    return {"responses": int(values.size), "max_deg": float(values.max()), "median_deg": float(np.median(values)),
            "mean_deg": float(values.mean())}


def clip_errors(folder: Path, records: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per clip: great-circle, signed azimuth and signed elevation error of the broadband DOA, plus T30."""
    rows = []
    for record in records:
        foa, _ = load_audio(folder / record["path"], channels=4)
        azimuth, elevation = (float(v) for v in broadband_doa(foa))
        rows.append({
            "great_circle_deg": great_circle_deg(azimuth, elevation, record["azimuth_deg"], record["elevation_deg"]),
            "azimuth_error_deg": wrap_degrees(azimuth - record["azimuth_deg"]),
            "elevation_error_deg": elevation - record["elevation_deg"],
            "t30_s": float(record["t30_s"]),
        })
    return rows


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    if not rows:
        return {"clips": 0}

    def column(key: str) -> np.ndarray:
        return np.asarray([r[key] for r in rows])

    return {
        "clips": len(rows),
        "median_great_circle_deg": float(np.median(column("great_circle_deg"))),
        "mean_great_circle_deg": float(np.mean(column("great_circle_deg"))),
        "median_signed_azimuth_deg": float(np.median(column("azimuth_error_deg"))),
        "median_signed_elevation_deg": float(np.median(column("elevation_error_deg"))),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("datasets/sfx_foa"))
    parser.add_argument("--split", default="test")
    add_out_argument(parser, "labels")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    records = [r for r in read_manifest(args.data, spatial=True) if r["split"] == args.split]
    bank = check_bank(args.data / "rir_bank")
    rows = clip_errors(args.data, records)
    result = {
        "data": str(args.data),
        "split": args.split,
        "direct_path": bank,
        "broadband_doa": summarise(rows),
        "broadband_doa_by_t30": {
            name: summarise([r for r in rows if low <= r["t30_s"] < high]) for name, low, high in T30_BANDS
        },
    }
    print(f"(a) direct path of {bank['responses']} stored responses: max {bank['max_deg']:.3f} deg, "
          f"median {bank['median_deg']:.3f} deg (target < 1 deg)")
    print(f"(b) broadband active-intensity DOA on {args.split} clips (targets: median great-circle <= 15 deg, "
          "median signed azimuth within +-3 deg)")
    print(f"{'subset':<20} {'clips':>5} {'median GC':>10} {'mean GC':>8} {'med az':>7} {'med el':>7}")
    for name, s in [("all", result["broadband_doa"]), *result["broadband_doa_by_t30"].items()]:
        if s["clips"]:
            print(f"{name:<20} {s['clips']:>5} {s['median_great_circle_deg']:>10.2f} "
                  f"{s['mean_great_circle_deg']:>8.2f} {s['median_signed_azimuth_deg']:>7.2f} "
                  f"{s['median_signed_elevation_deg']:>7.2f}")
    write_results(args.out, result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
