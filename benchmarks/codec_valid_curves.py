"""Validation metrics by step of a codec run, side by side with earlier runs: a JSON table and one figure.

Reads the run's ``train_log.jsonl`` (the trainer's validation records) and writes ``valid_by_step.json`` (what
``benchmarks/results/codec_small/v2/valid_by_step.json`` holds) plus a PNG beside it with a panel per metric and a
line per run, so that two recipes are compared at equal steps on the same validation clips.

    python benchmarks/codec_valid_curves.py --run runs/codec_v3 \\
        --reference v2=benchmarks/results/codec_small/v2/valid_by_step.json \\
        --out benchmarks/results/codec_small/v3/valid_by_step.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from results_io import add_out_argument, write_results  # benchmarks/results_io.py

from soundstage.train.trainer import LOG_NAME, read_train_log

# the metrics the figure shows (each run's JSON keeps all of them)
PANELS = ("w_band_error_median_db", "steady_tone_level_error_db", "angle_error_median_deg", "mel_distance",
          "diffuseness_error", "stft_loss")


def valid_by_step(run: Path) -> dict[str, dict[str, float]]:
    """``{step: {metric: value}}`` from a run folder's training log (rounded to 4 decimals)."""
    _train, valid = read_train_log(run / LOG_NAME)
    if not valid:
        raise SystemExit(f"{run / LOG_NAME} holds no validation record yet: is {run} a codec run folder?")
    return {str(r["step"]): {k: round(v, 4) for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
            for r in valid}


def plot_runs(runs: dict[str, dict[str, dict[str, float]]], png: Path) -> None:
    """One panel per metric of :data:`PANELS`, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = math.ceil(len(PANELS) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, PANELS):
        for label, table in runs.items():
            points = sorted((int(s), m[metric]) for s, m in table.items() if metric in m and math.isfinite(m[metric]))
            if points:
                ax.plot(*zip(*points), marker=".", label=label)
        ax.set(title=metric, xlabel="step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    for ax in list(axes.flat)[len(PANELS):]:
        ax.set_visible(False)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"wrote {png}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="codec run folder (holds train_log.jsonl)")
    parser.add_argument("--label", default=None, help="the run's name in the figure (default: the folder's name)")
    parser.add_argument("--reference", action="append", default=[], metavar="LABEL=JSON",
                        help="an earlier run's valid_by_step.json to draw beside it (repeatable)")
    add_out_argument(parser, "codec_valid_by_step")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    table = valid_by_step(args.run)
    config: dict[str, Any] = json.loads((args.run / "train_config.json").read_text())
    results = {
        "what": f"valid-split metrics by step of {args.run} (EMA weights, uncalibrated)",
        "train_config": {k: config.get(k) for k in ("max_steps", "batch_size", "learning_rate", "ema_decay",
                                                   "warmup_steps")},
        "valid_by_step": table,
    }
    write_results(args.out, results)
    runs = {}
    for item in args.reference:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--reference takes LABEL=JSON, got {item!r}")
        runs[label] = json.loads(Path(path).read_text())["valid_by_step"]
    runs[args.label or args.run.name] = table
    plot_runs(runs, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
