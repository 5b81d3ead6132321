"""Evaluate a generation model on prompts built from a dataset split: direction, moving sources, descriptive mode,
semantics and time.

One request per clip of the split: its ``caption`` as the parametric prompt with its labelled azimuth, elevation,
distance, floor area and T30, and its ``spatial_caption`` for descriptive mode; ``seconds = min(clip length, 5 s)``;
clip ``i`` uses seed ``--seed + i`` in every mode (paired comparisons).

1. Parametric direction error: great circle between the requested direction and the broadband active-intensity DOA
   (``soundstage.foa.broadband_doa``) of the output, with the direction lock (default) and without; medians over all
   clips and over requested T30 <= 0.5 s, next to the same estimator's error on the real clips (their label); and
   the median broadband diffuseness of real, locked and unlocked clips (the lock should not make rooms dry).
2. Moving source: ``--trajectory`` (default ``0:90:0,4:-90:0``, 4 s) for the first ``--moving`` distinct split
   captions, each in the room (distance, floor area, T30) of the first clip with it; per 40-ms frame within 30 dB
   of the loudest, the great circle between the trajectory's direction at the frame's centre and the frame's DOA
   (``framewise_doa``); median over all frames; and each clip's median diffuseness over those frames
   (``gated_framewise_diffuseness``: how wet the room is where the direction is measured).
3. Descriptive mode: on clips whose label has one of the 4 direction classes (front/left/right/back, as ELSA's
   zero-shot probes define them), the quadrant of the output's measured azimuth (edges at +-45 / +-135 deg) versus
   the label's quadrant; accuracy, with the pipeline's default (the direction the caption names in words locked on
   the direction track, ``soundstage.sample.prompt_direction``) and the model's own (``direction_lock=False``).
4. Semantics: ELSA audio embedding of each generated clip (parametric, lock on) and of each real clip (cut to the
   same length); class prototypes = the normalised mean ELSA text embedding of the *training* split's semantic
   captions of each class (so no evaluated caption is in its own prototype); top-1 accuracy over the classes of the
   whole split; generated, real, their ratio and chance (1 / classes).
5. Time per clip and in total; the settings used.

Prints a table and writes JSON with per-clip values in ``clips`` (``--out``, default
``runs/benchmarks/generate_eval.json``); ``--examples DIR`` also saves 8 generated clips (7 directions, 1 moving) as
AmbiX WAV + ``.binaural.wav`` previews + direction maps (``soundstage foa analyze --plot``) and ``examples.json``.

    python benchmarks/eval_generate.py --model small --data datasets/sfx_foa --split test [--max-clips 12]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py (the script's folder)
from tqdm.auto import tqdm

from soundstage.common.audio import load_audio, save_audio
from soundstage.data.captions import DIRECTION_WORDS, direction_word
from soundstage.data.manifest import read_manifest, split_records
from soundstage.elsa_encoder import ELSA
from soundstage.elsa_encoder.probes import attribute_label
from soundstage.foa import diffuseness, great_circle_deg, wrap_degrees
from soundstage.foa_files import analyze_foa_file, render_preview
from soundstage.metrics.spatial_metrics import doa_deg, gated_framewise_diffuseness
from soundstage.sample import SoundstagePipeline, trajectory_frame_errors

logger = logging.getLogger(__name__)

QUADRANTS = ("front", "left", "right", "back")
MAX_CLIP_SECONDS = 5.0
DRY_T30_S = 0.5  # the "T30 <= 0.5 s" subset of the direction targets
TARGETS = {"lock_dry_median_deg": 3.0, "no_lock_median_deg": 8.0, "moving_median_deg": 8.0,
           "descriptive_accuracy": 0.90, "semantic_ratio": 0.60}
NUM_EXAMPLES = 8
DESCRIPTIVE_RUNS = {"descriptive": True, "descriptive_no_lock": False}  # key -> direction_lock


@dataclass
class EvalSettings:
    """What every request of the evaluation shares (None = the pipeline's default)."""

    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str = "euler"
    seed: int = 0  # clip i uses seed + i; moving prompt j uses seed + j
    max_seconds: float = MAX_CLIP_SECONDS
    trajectory: str = "0:90:0,4:-90:0"
    moving_seconds: float = 4.0
    moving_prompts: int = 12


# ----------------------------------------------------------------------------------------------------------------
# Measures
# ----------------------------------------------------------------------------------------------------------------


def quadrant(azimuth_deg: float) -> str:
    """The nearest of front (0), left (90), right (-90), back (180) to an azimuth in degrees (edges +-45, +-135)."""
    az = float(wrap_degrees(float(azimuth_deg)))
    if abs(az) <= 45.0:
        return "front"
    if abs(az) >= 135.0:
        return "back"
    return "left" if az > 0 else "right"


def doa(foa: np.ndarray) -> tuple[float, float]:
    """Broadband active-intensity DOA (azimuth, elevation) in degrees of ``(4, T)`` audio."""
    return doa_deg(foa)


def direction_error(foa: np.ndarray, azimuth_deg: float, elevation_deg: float) -> float:
    """Great circle (degrees) between the broadband DOA of ``foa`` and the given direction."""
    return float(great_circle_deg(*doa(foa), azimuth_deg, elevation_deg))


def caption_prototypes(elsa: ELSA, records: Sequence[dict[str, Any]], classes: Sequence[str]) -> torch.Tensor:
    """``(C, D)`` unit prototypes: the normalised mean ELSA text embedding of the distinct semantic captions of each
    class (in ``classes`` order) among ``records``."""
    rows = []
    with torch.inference_mode():
        for name in classes:
            captions = sorted({r["caption"] for r in records if r["class"] == name})
            if not captions:
                raise ValueError(f"no caption of class {name!r} to build its prototype from")
            rows.append(F.normalize(elsa.embed_text(captions).mean(0), dim=-1))
    return torch.stack(rows)


def nearest_classes(embeddings: torch.Tensor, prototypes: torch.Tensor) -> np.ndarray:
    """Index of the most similar prototype of each ``(N, D)`` unit embedding."""
    return (embeddings @ prototypes.T).argmax(-1).numpy()


def embed_audio(elsa: ELSA, foa: np.ndarray, sample_rate: int) -> torch.Tensor:
    """ELSA embedding ``(D,)`` of one ``(4, T)`` clip."""
    with torch.inference_mode():
        return elsa.embed_audio(torch.from_numpy(np.ascontiguousarray(foa))[None], sample_rate)[0].cpu()


def median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def error_summary(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """Median and mean of ``key`` over all rows and over rows with requested T30 <= 0.5 s."""
    def block(subset: Sequence[dict[str, Any]]) -> dict[str, Any]:
        values = [r[key] for r in subset]
        return {"clips": len(values), "median_deg": median(values),
                "mean_deg": float(np.mean(values)) if values else math.nan}

    return {"all": block(rows), "t30_le_0.5": block([r for r in rows if r["t30_s"] <= DRY_T30_S])}


# ----------------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------------


def clip_seconds(record: dict[str, Any], limit: float) -> float:
    """The clip's length in seconds, at most ``limit``."""
    return min(record["num_frames"] / record["sample_rate"], limit)


def room_options(record: dict[str, Any]) -> dict[str, float]:
    """A clip's room: source distance, floor area and T30 (the parametric numbers but its direction)."""
    return {key: float(record[key]) for key in ("distance_m", "floor_area_m2", "t30_s")}


def parametric_options(record: dict[str, Any]) -> dict[str, float]:
    """The parametric request's numbers from a clip's labels: its direction and its room."""
    return {"azimuth_deg": float(record["azimuth_deg"]), "elevation_deg": float(record["elevation_deg"]),
            **room_options(record)}


def generate(pipe: SoundstagePipeline, settings: EvalSettings, prompt: str, seed: int,
             **options: Any) -> tuple[np.ndarray, dict[str, float]]:
    """One clip ``(4, T)`` and its timings (the pipeline's parts plus ``total`` wall seconds)."""
    started = time.perf_counter()
    result = pipe(prompt, steps=settings.steps, cfg_scale=settings.cfg_scale, sampler=settings.sampler, seed=seed,
                  progress=False, **options)
    timings = {**result.timings, "total": time.perf_counter() - started}
    return result.foa[0].numpy(), timings


def evaluate_clip(pipe: SoundstagePipeline, settings: EvalSettings, data_dir: Path, record: dict[str, Any],
                  index: int, keep_audio: bool = False) -> dict[str, Any]:
    """Every per-clip measure of one split clip; with ``keep_audio`` the lock-on output is kept under ``_foa``."""
    seed, seconds = settings.seed + index, clip_seconds(record, settings.max_seconds)
    az, el = float(record["azimuth_deg"]), float(record["elevation_deg"])
    row: dict[str, Any] = {"index": index, "path": record["path"], "class": record["class"],
                           "caption": record["caption"], "spatial_caption": record["spatial_caption"],
                           **parametric_options(record), "seconds": seconds, "seed": seed, "timings": {}}
    real, rate = load_audio(data_dir / record["path"], sample_rate=pipe.sample_rate, channels=4)
    row["real_doa_deg"], row["real_diffuseness"] = doa(real), float(diffuseness(real))
    row["real_error_deg"] = float(great_circle_deg(*row["real_doa_deg"], az, el))
    row["_real_embedding"] = embed_audio(pipe.elsa, real[:, :round(seconds * rate)], rate)

    foa, row["timings"]["lock"] = generate(pipe, settings, record["caption"], seed, seconds=seconds,
                                           **parametric_options(record))
    row["lock_doa_deg"], row["lock_diffuseness"] = doa(foa), float(diffuseness(foa))
    row["lock_error_deg"] = float(great_circle_deg(*row["lock_doa_deg"], az, el))
    row["_embedding"] = embed_audio(pipe.elsa, foa, pipe.sample_rate)
    if keep_audio:
        row["_foa"] = foa

    foa, row["timings"]["no_lock"] = generate(pipe, settings, record["caption"], seed, seconds=seconds,
                                              direction_lock=False, **parametric_options(record))
    row["no_lock_doa_deg"], row["no_lock_diffuseness"] = doa(foa), float(diffuseness(foa))
    row["no_lock_error_deg"] = float(great_circle_deg(*row["no_lock_doa_deg"], az, el))

    if attribute_label("direction", record) >= 0:  # the caption names front, left, right or back
        for key, lock in DESCRIPTIVE_RUNS.items():
            foa, row["timings"][key] = generate(pipe, settings, record["spatial_caption"], seed, mode="descriptive",
                                                seconds=seconds, direction_lock=lock)
            measured = doa(foa)[0]
            row[key] = {"azimuth_deg": measured, "quadrant": quadrant(measured), "label_quadrant": quadrant(az),
                        "correct": quadrant(measured) == quadrant(az)}
    return row


def evaluate_moving(pipe: SoundstagePipeline, settings: EvalSettings, record: dict[str, Any],
                    index: int) -> tuple[dict[str, Any], np.ndarray]:
    """One moving-source clip from a split clip's caption, in that clip's room: its framewise errors (summary and
    values), the median diffuseness of the frames they are measured on, and the audio.

    The room is given because it decides the measure: a wet room's reflections pull each frame's direction, and a
    model left to pick its own room would be scored on its room prior, not on following the trajectory."""
    seed, prompt, room = settings.seed + index, record["caption"], room_options(record)
    foa, timings = generate(pipe, settings, prompt, seed, trajectory=settings.trajectory,
                            seconds=settings.moving_seconds, **room)
    errors = trajectory_frame_errors(foa, pipe.sample_rate, settings.trajectory)
    row = {"index": index, "prompt": prompt, "seed": seed, **room, "frames": int(errors.size),
           "median_deg": median(errors.tolist()), "frame_errors_deg": [round(float(e), 3) for e in errors],
           "framewise_diffuseness": gated_framewise_diffuseness(foa, pipe.sample_rate), "timings": timings}
    return row, foa


# ----------------------------------------------------------------------------------------------------------------
# Examples
# ----------------------------------------------------------------------------------------------------------------


def pick_examples(records: Sequence[dict[str, Any]], count: int) -> list[int]:
    """Indices of ``count`` clips with different classes, spread over the 8 direction words (round robin)."""
    chosen: list[int] = []
    classes: set[str] = set()
    for second_pass in (False, True):  # the second pass allows a repeated class
        for word in DIRECTION_WORDS:
            for i, record in enumerate(records):
                fresh = second_pass or record["class"] not in classes
                if len(chosen) < count and i not in chosen and fresh and direction_word(record["azimuth_deg"]) == word:
                    chosen.append(i)
                    classes.add(record["class"])
                    break
    for i in range(len(records)):  # fewer direction words than needed: fill in order
        if len(chosen) < count and i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def slug(text: str, limit: int = 32) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "_".join(words)[:limit].rstrip("_") or "clip"


def save_example(folder: Path, name: str, foa: np.ndarray, sample_rate: int, info: dict[str, Any]) -> dict[str, Any]:
    """AmbiX WAV + ``NAME.binaural.wav`` + ``NAME.png`` direction map; returns ``info`` with the files and the
    measured direction (``soundstage foa analyze``)."""
    wav = folder / f"{name}.wav"
    save_audio(wav, foa, sample_rate, subtype="FLOAT")
    render_preview(wav, folder / f"{name}.binaural.wav", "binaural")
    analysis = analyze_foa_file(wav, plot=folder / f"{name}.png")
    return {"file": wav.name, "binaural": f"{name}.binaural.wav", "plot": f"{name}.png", **info,
            "measured": {k: analysis[k] for k in ("azimuth_deg", "elevation_deg", "diffuseness")}}


def write_examples(folder: Path, rows: Sequence[dict[str, Any]], moving: tuple[dict[str, Any], np.ndarray] | None,
                   sample_rate: int, settings: EvalSettings) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, row in enumerate(r for r in rows if "_foa" in r):
        info = {"prompt": row["caption"], "mode": "parametric", "seed": row["seed"], "seconds": row["seconds"],
                **parametric_options(row)}
        name = f"{n + 1:02d}_{direction_word(row['azimuth_deg']).replace(' ', '-')}_{slug(row['caption'])}"
        written.append(save_example(folder, name, row["_foa"], sample_rate, info))
    if moving is not None:
        row, foa = moving
        info = {"prompt": row["prompt"], "mode": "parametric", "seed": row["seed"], "seconds": settings.moving_seconds,
                "trajectory": settings.trajectory}
        written.append(save_example(folder, f"{len(written) + 1:02d}_moving_{slug(row['prompt'])}", foa,
                                    sample_rate, info))
    (folder / "examples.json").write_text(json.dumps(written, indent=2) + "\n")
    return written


# ----------------------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------------------


def semantic_summary(rows: Sequence[dict[str, Any]], prototypes: torch.Tensor, classes: Sequence[str],
                     source: str) -> dict[str, Any]:
    """Top-1 class accuracy of the generated (lock on) and the real clips; sets each row's predicted classes."""
    labels = np.array([classes.index(r["class"]) for r in rows])
    generated = nearest_classes(torch.stack([r["_embedding"] for r in rows]), prototypes)
    real = nearest_classes(torch.stack([r["_real_embedding"] for r in rows]), prototypes)
    for row, g, t in zip(rows, generated, real):
        row["semantic"] = {"generated_class": classes[g], "real_class": classes[t]}
    gen_acc, real_acc = float((generated == labels).mean()), float((real == labels).mean())
    return {"prototypes": source, "classes": len(classes), "clips": len(rows), "generated_accuracy": gen_acc,
            "real_accuracy": real_acc, "ratio": gen_acc / real_acc if real_acc > 0 else math.nan,
            "chance": 1.0 / len(classes)}


def descriptive_summary(rows: Sequence[dict[str, Any]], key: str = "descriptive") -> dict[str, Any]:
    judged = [r[key] for r in rows if key in r]
    confusion = {q: {p: sum(1 for d in judged if d["label_quadrant"] == q and d["quadrant"] == p) for p in QUADRANTS}
                 for q in QUADRANTS}
    return {"clips": len(judged), "accuracy": float(np.mean([d["correct"] for d in judged])) if judged else math.nan,
            "confusion_label_to_measured": confusion}


def timing_summary(rows: Sequence[dict[str, Any]], moving: Sequence[dict[str, Any]], total_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"total_s": total_s}
    runs = {"lock": [r["timings"]["lock"] for r in rows], "no_lock": [r["timings"]["no_lock"] for r in rows],
            **{key: [r["timings"][key] for r in rows if key in r["timings"]] for key in DESCRIPTIVE_RUNS},
            "moving": [r["timings"] for r in moving]}
    for mode, timings in runs.items():
        if timings:
            out[mode] = {part: median([t[part] for t in timings]) for part in timings[0]} | {"runs": len(timings)}
    out["per_split_clip_s"] = total_s / max(len(rows), 1)
    return out


def summarise(rows: list[dict[str, Any]], moving: list[dict[str, Any]], semantics: dict[str, Any],
              total_s: float) -> dict[str, Any]:
    frames = [e for m in moving for e in m["frame_errors_deg"]]
    return {
        "parametric_lock": error_summary(rows, "lock_error_deg"),
        "parametric_no_lock": error_summary(rows, "no_lock_error_deg"),
        "real_clips": error_summary(rows, "real_error_deg"),
        "moving": {"prompts": len(moving), "frames": len(frames), "median_deg": median(frames),
                   "median_of_clip_medians_deg": median([m["median_deg"] for m in moving]),
                   "median_framewise_diffuseness": median([m["framewise_diffuseness"] for m in moving])},
        "median_diffuseness": {k: median([r[f"{k}_diffuseness"] for r in rows]) for k in ("real", "lock", "no_lock")},
        **{key: descriptive_summary(rows, key) for key in DESCRIPTIVE_RUNS},
        "semantics": semantics,
        "timing": timing_summary(rows, moving, total_s),
    }


def format_table(summary: dict[str, Any]) -> str:
    lock, free, real = summary["parametric_lock"], summary["parametric_no_lock"], summary["real_clips"]
    lines = [f"{'direction error (median deg)':<34}{'all':>8}{'T30<=0.5':>10}{'clips':>7}  {'target':<16}"]
    for name, block, target in (("parametric, lock", lock, "<= 3 (T30<=.5)"), ("parametric, no lock", free, "<= 8"),
                                ("real clips vs label", real, "")):
        lines.append(f"{name:<34}{block['all']['median_deg']:>8.2f}{block['t30_le_0.5']['median_deg']:>10.2f}"
                     f"{block['all']['clips']:>7}  {target:<16}")
    mv, ds, sem, tm = summary["moving"], summary["descriptive"], summary["semantics"], summary["timing"]
    lines += [
        (f"{'moving source, framewise':<34}{mv['median_deg']:>8.2f}{'':>10}{mv['prompts']:>7}  {'<= 8':<16}"
         f"({mv['frames']} frames, diffuseness {mv['median_framewise_diffuseness']:.2f})"),
        (f"{'descriptive 4-way accuracy':<34}{ds['accuracy']:>8.3f}{'':>10}{ds['clips']:>7}  {'>= 0.90':<16}"
        "(prompt words locked)"),
        (f"{'  model alone (no lock)':<34}{summary['descriptive_no_lock']['accuracy']:>8.3f}{'':>10}"
        f"{summary['descriptive_no_lock']['clips']:>7}"),
        f"{'ELSA class match, generated':<34}{sem['generated_accuracy']:>8.3f}{'':>10}{sem['clips']:>7}",
        f"{'ELSA class match, real':<34}{sem['real_accuracy']:>8.3f}",
        f"{'  ratio generated / real':<34}{sem['ratio']:>8.3f}{'':>10}{'':>7}  {'>= 0.60':<16}",
        f"{'  chance (1 / classes)':<34}{sem['chance']:>8.3f}{'':>10}{sem['classes']:>7}  classes",
        "median diffuseness: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["median_diffuseness"].items()),
        f"time: {tm['total_s']:.1f} s in total, {tm['per_split_clip_s']:.1f} s per split clip; median per generation: "
        + ", ".join(f"{m} {tm[m]['total']:.2f} s" for m in ("lock", "no_lock", *DESCRIPTIVE_RUNS, "moving") if m in tm),
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def run_evaluation(pipe: SoundstagePipeline, data_dir: Path, split: str, settings: EvalSettings,
                   max_clips: int | None = None, examples: Path | None = None) -> dict[str, Any]:
    """Every measure on the first ``max_clips`` clips of ``split`` (see the module docstring); the result's
    ``clips`` and ``moving_clips`` hold the per-clip values."""
    if pipe.elsa is None:
        raise ValueError("the model has no elsa/ folder: descriptive mode and the semantic measure need it")
    started = time.perf_counter()
    all_records = read_manifest(data_dir, spatial=True)
    records = split_records(data_dir, split, max_clips)
    classes = sorted({r["class"] for r in all_records if r["split"] == split})
    train = [r for r in all_records if r["split"] == "train" and r["class"] in classes]
    source = "train-split semantic captions, mean ELSA text embedding per class"
    if {r["class"] for r in train} != set(classes):  # no training clip of some class: fall back to the split's own
        train, source = [r for r in all_records if r["split"] == split], f"{split}-split semantic captions"
    prototypes = caption_prototypes(pipe.elsa, train, classes)

    keep = set(pick_examples(records, NUM_EXAMPLES - 1)) if examples is not None else set()
    rows = []
    for i, record in enumerate(tqdm(records, desc="split clips", unit="clip")):
        rows.append(evaluate_clip(pipe, settings, data_dir, record, i, keep_audio=i in keep))
    moving, moving_audio = [], None
    # from the whole split, so that --max-clips does not cut the moving prompts short (the first distinct captions:
    # the same prompts for any --max-clips that holds that many)
    first_of_caption: dict[str, dict[str, Any]] = {}
    for record in all_records:
        if record["split"] == split:
            first_of_caption.setdefault(record["caption"], record)
    prompts = list(first_of_caption.values())[:settings.moving_prompts]
    for j, record in enumerate(tqdm(prompts, desc="moving sources", unit="clip")):
        row, foa = evaluate_moving(pipe, settings, record, j)
        moving.append(row)
        moving_audio = moving_audio or (row, foa)
    semantics = semantic_summary(rows, prototypes, classes, source)
    written = write_examples(examples, rows, moving_audio, pipe.sample_rate, settings) if examples else []
    summary = summarise(rows, moving, semantics, time.perf_counter() - started)
    for row in rows:
        for key in [k for k in row if k.startswith("_")]:
            del row[key]
    return {**summary, "examples": written, "clips": rows, "moving_clips": moving}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small", help="generation folder (codec/, elsa/, dit/) or bundled name")
    parser.add_argument("--data", type=Path, default=Path("datasets/sfx_foa"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-clips", type=int, default=None, help="only the first N clips of the split")
    parser.add_argument("--moving", type=int, default=12, help="moving-source prompts (the first N distinct captions)")
    parser.add_argument("--trajectory", default="0:90:0,4:-90:0")
    parser.add_argument("--moving-seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the pipeline's)")
    parser.add_argument("--cfg-scale", type=float, default=None, help="guidance scale (default: the pipeline's)")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--seed", type=int, default=0, help="clip i uses seed + i")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--examples", type=Path, default=None, help="save 8 example clips, previews and plots here")
    add_out_argument(parser, "generate_eval")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = EvalSettings(steps=args.steps, cfg_scale=args.cfg_scale, sampler=args.sampler, seed=args.seed,
                            trajectory=args.trajectory, moving_seconds=args.moving_seconds, moving_prompts=args.moving)
    pipe = SoundstagePipeline.from_pretrained(args.model)
    defaults = pipe.defaults
    used = {**asdict(settings), "steps": settings.steps or defaults.steps,
            "cfg_scale": defaults.cfg_scale if settings.cfg_scale is None else settings.cfg_scale,
            "shift": defaults.shift, "guidance_interval": list(defaults.guidance_interval),
            "seeds": f"clip i of the split uses {settings.seed} + i in every mode; moving prompt j uses {settings.seed} + j"}
    results = run_evaluation(pipe, args.data, args.split, settings, args.max_clips, args.examples)
    results = {"model": str(args.model), "model_hash": pipe.model_hash, "data": str(args.data), "split": args.split,
               "settings": used, "targets": TARGETS, "machine": machine_info(), **results}
    print(format_table(results))
    write_results(args.out, results)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
