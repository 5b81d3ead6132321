"""The ``soundstage`` command: parses arguments and calls the library functions that tests call too."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soundstage.common.errors import SoundstageError, UsageError
from soundstage.common.validate import decay_rate, finite_float, int_at_least, positive_float

if TYPE_CHECKING:
    import torch

    from soundstage.sample import GenerationRequest
    from soundstage.train.trainer import TrainConfig

PRESETS = ("tiny", "small", "paper")


def _data_sfx(args: argparse.Namespace) -> None:
    from soundstage.data.sfx import build_sfx_corpus

    report, packages = build_sfx_corpus(args.out, cache_dir=args.cache, packages=args.package,
                                        max_class_fraction=args.max_class_fraction)
    print(report.summary())
    print()
    print(packages)


def _data_sfx_review(args: argparse.Namespace) -> None:
    from soundstage.data.sfx import review_packages

    count = review_packages(args.out, cache_dir=args.cache, packages=args.package)
    print(f"measured {count} audio members -> {args.out}")


def _data_import(args: argparse.Namespace) -> None:
    from soundstage.data.importer import import_corpus

    print(import_corpus(args.csv, args.audio_root, args.out).summary())


def _data_spatialize(args: argparse.Namespace) -> None:
    from soundstage.data.spatialize import spatialize_corpus

    report = spatialize_corpus(
        args.in_dir,
        args.out,
        per_clip=args.per_clip,
        sample_rate=args.sample_rate,
        seed=args.seed,
        workers=args.workers,
        shard=args.shard,
        num_shards=args.num_shards,
    )
    print(report.summary())


def _data_encode(args: argparse.Namespace) -> None:
    from soundstage.codec import FOACodec
    from soundstage.train.latents import encode_latents

    codec = FOACodec.from_pretrained(args.codec)
    options = {} if args.rotations is None else {"rotations": args.rotations}
    report = encode_latents(codec, args.data, args.out, shard=args.shard, num_shards=args.num_shards,
                            seed=args.seed, **options)
    print(report.summary())


def _foa(args: argparse.Namespace) -> None:
    from soundstage import foa_files

    if args.foa_command == "analyze":
        for key, value in foa_files.analyze_foa_file(args.file, plot=args.plot).items():
            print(f"{key:>14}: {value:.3f}")
    elif args.foa_command == "preview":
        print(foa_files.render_preview(args.file, args.out, kind=args.kind))
    elif args.foa_command == "convert":
        print(foa_files.convert_foa_file(args.file, args.out, to=args.to))
    else:
        print(foa_files.rotate_foa_file(args.file, args.out, yaw=args.yaw, pitch=args.pitch, roll=args.roll))


def rotation_angles(text: str) -> tuple[float, float, float]:
    """``YAW[,PITCH,ROLL]`` in degrees (any finite numbers) -> (yaw, pitch, roll); argparse type of ``--rotate``."""
    parts = text.split(",")
    if len(parts) > 3:
        raise argparse.ArgumentTypeError(f"expected YAW[,PITCH[,ROLL]] in degrees, got {text!r}")
    angles = [finite_float(part.strip()) for part in parts]
    return (*angles, *[0.0] * (3 - len(angles)))  # type: ignore[return-value]


# `soundstage generate` option -> GenerationRequest field (per-request values; a batch file gives them per row)
GENERATE_OPTIONS = {"mode": "mode", "azimuth": "azimuth_deg", "elevation": "elevation_deg", "distance": "distance_m",
                    "floor_area": "floor_area_m2", "t30": "t30_s", "seconds": "seconds", "steps": "steps",
                    "cfg_scale": "cfg_scale", "negative_prompt": "negative_prompt", "seed": "seed",
                    "trajectory": "trajectory", "init_strength": "init_strength"}
SINGLE_ONLY = ("out", "rotate", "init_audio", "preview")  # options of one clip, refused with --batch


def _angles(azimuth: float, elevation: float) -> str:
    return f"azimuth {azimuth:+.1f}, elevation {elevation:+.1f} deg"


def _generate(args: argparse.Namespace) -> None:
    from soundstage.common.audio import check_output_path
    from soundstage.foa import great_circle_deg, rotate_foa
    from soundstage.foa_files import _save_foa, render_preview
    from soundstage.sample import SoundstagePipeline, generate_batch

    given = {field: getattr(args, option) for option, field in GENERATE_OPTIONS.items()
             if getattr(args, option) is not None}
    if args.batch is not None:
        extra = [f"--{name.replace('_', '-')}" for name in (*GENERATE_OPTIONS, *SINGLE_ONLY)
                 if getattr(args, name) is not None] + (["PROMPT"] if args.prompt is not None else [])
        if extra:
            raise UsageError(f"--batch reads each request from its JSONL rows; {', '.join(extra)} cannot be given "
                             "with it (only --model, --sampler and --no-direction-lock apply to every row)")
        if args.out_dir is None:
            raise UsageError("--batch needs --out-dir DIR for the clips and their manifest.jsonl")
        report = generate_batch(SoundstagePipeline.from_pretrained(args.model), args.batch, args.out_dir,
                                direction_lock=not args.no_direction_lock, sampler=args.sampler)
        print(f"{args.out_dir}: wrote {report.written}, skipped {report.skipped} already done, "
              f"{len(report.failed)} failed")
        for failure in report.failed:
            row = f" (id {failure.id})" if failure.id is not None else ""
            print(f"{args.batch}:{failure.line}{row}: {failure.reason}", file=sys.stderr)
        if report.failed:
            raise UsageError(f"{len(report.failed)} row(s) of {args.batch} failed (listed above); the others were "
                             "written, and a re-run skips them")
        return

    if args.prompt is None or args.out is None:
        raise UsageError("give a PROMPT and --out FILE.wav (or --batch prompts.jsonl --out-dir DIR)")
    if args.out_dir is not None:
        raise UsageError("--out-dir is for --batch; one clip is written to --out FILE.wav")
    if args.init_strength is not None and args.init_audio is None:
        raise UsageError("--init-strength applies to --init-audio FILE; give both")
    out = check_output_path(args.out)
    previews = {kind: out.with_suffix(f".{kind}{out.suffix}") for kind in args.preview or ()}
    for path in (out, *previews.values()):
        check_output_path(path)
        if not path.parent.is_dir():
            raise UsageError(f"{path}: the folder {path.parent} does not exist")

    pipe = SoundstagePipeline.from_pretrained(args.model)
    request = pipe.make_request(args.prompt, direction_lock=not args.no_direction_lock, sampler=args.sampler, **given)
    result = pipe.generate(request, init_audio=args.init_audio)
    foa = result.foa[0]
    if args.rotate is not None:
        foa = rotate_foa(foa, *args.rotate)
    _save_foa(out, foa.numpy(), result.sample_rate)
    for kind, path in previews.items():
        render_preview(out, path, kind=kind)

    print(f"wrote {out}: {foa.shape[-1] / result.sample_rate:.2f} s, {result.sample_rate} Hz, 4-channel AmbiX "
          f"({'32-bit float' if out.suffix.lower() == '.wav' else '24-bit'}), {request.mode} mode, seed {result.seeds[0]}"
          + (f", rotated by yaw/pitch/roll {'/'.join(f'{a:g}' for a in args.rotate)} deg" if args.rotate else ""))
    for path in previews.values():
        print(f"wrote {path}")
    for label, requested, measured in _directions(request, foa, result.sample_rate, args.rotate):
        words = request.prompt_direction
        if requested is None:
            wanted = "none" if words is None else f"none ({words.describe()}: the model's own direction)"
        else:
            wanted = _angles(*requested) + ("" if words is None else f" (the prompt's {words.describe()})")
        if request.mode == "descriptive" and requested is not None and not request.locks_direction:
            wanted += ", not locked"
        error = "" if requested is None else \
            f" (off by {float(great_circle_deg(*requested, *measured)):.1f} deg)"
        print(f"{label}: requested {wanted}; measured {_angles(*measured)}{error}")


def _directions(request: GenerationRequest, foa: torch.Tensor, sample_rate: int,
                rotate: tuple[float, float, float] | None,
                ) -> list[tuple[str, tuple[float, float] | None, tuple[float, float]]]:
    """(label, requested (az, el) or None, measured (az, el)) lines for the printout: the broadband direction
    (soundstage.foa.broadband_doa) of the whole clip; for a trajectory instead, of its first and last quarter second
    (at most a quarter of the clip each) next to the trajectory's direction at those windows' centres. Requested
    directions are rotated like the audio."""
    from soundstage.foa import broadband_doa, direction_vector, rotation_matrix, vector_to_angles
    from soundstage.sample import trajectory_vectors

    def rotated(direction: tuple[float, float] | None) -> tuple[float, float] | None:
        if direction is None or rotate is None:
            return direction
        azimuth, elevation = vector_to_angles(rotation_matrix(*rotate) @ direction_vector(*direction))
        return float(azimuth), float(elevation)

    def measure(audio: torch.Tensor) -> tuple[float, float]:
        azimuth, elevation = broadband_doa(audio)
        return float(azimuth), float(elevation)

    if not request.keyframes:
        return [("direction", rotated(request.target_direction), measure(foa))]
    lines = []
    window = max(1, min(round(0.25 * sample_rate), foa.shape[-1] // 4))
    for label, part, centre in (("start", foa[..., :window], 0.5 * window),
                                ("end", foa[..., -window:], foa.shape[-1] - 0.5 * window)):
        vector = trajectory_vectors(request.keyframes, 1, 0.5 * sample_rate / centre)[0]  # at `centre` samples
        azimuth, elevation = vector_to_angles(vector)
        lines.append((f"trajectory {label}", rotated((float(azimuth), float(elevation))), measure(part)))
    return lines


def _app(args: argparse.Namespace) -> None:
    try:
        from soundstage.app import AppLimits, serve
    except ImportError as exc:
        raise UsageError(f"the app needs gradio ({exc}): pip install 'soundstage[app]'") from None

    serve(args.model, host=args.host, port=args.port,
          limits=AppLimits(concurrency=args.concurrency, max_queue=args.max_queue))


# TrainConfig fields that a `soundstage train` flag sets: flag -> field
TRAIN_FLAGS = {"steps": "max_steps", "batch_size": "batch_size", "grad_accum": "gradient_accumulation_steps",
               "lr": "learning_rate", "ema_decay": "ema_decay", "workers": "num_workers", "seed": "seed",
               "mixed_precision": "mixed_precision"}


def _train_config(args: argparse.Namespace, preset_values: dict[str, Any]) -> TrainConfig:
    """The preset's TrainConfig values, then the flags; an unknown key is a TypeError (no key is dropped)."""
    from soundstage.train.trainer import TrainConfig

    values = dict(preset_values)
    values.update({key: getattr(args, flag) for flag, key in TRAIN_FLAGS.items() if getattr(args, flag) is not None})
    if args.train_only:
        values["train_only"] = tuple(args.train_only)
    return TrainConfig(out_dir=args.out, **values)


def _train(args: argparse.Namespace) -> None:
    from soundstage.common.overrides import apply_overrides
    from soundstage.train.trainer import run_training

    if args.component == "codec":
        from soundstage.codec.model import CODEC_PRESETS
        from soundstage.train.codec_task import CODEC_TRAIN_DEFAULTS as defaults
        from soundstage.train.codec_task import make_codec_task as make_task

        preset_config: Any = CODEC_PRESETS[args.preset]
    elif args.component == "dit":
        from soundstage.dit import dit_preset
        from soundstage.train.dit_task import DIT_TRAIN_DEFAULTS as defaults
        from soundstage.train.dit_task import make_dit_task as make_task

        preset_config = dit_preset(args.preset)
    else:
        from soundstage.elsa_encoder import elsa_preset
        from soundstage.train.elsa_task import ELSA_TRAIN_DEFAULTS as defaults
        from soundstage.train.elsa_task import make_elsa_task as make_task

        preset_config = elsa_preset(args.preset)
    config = _train_config(args, defaults[args.preset])
    task_options: dict[str, Any] = {}
    if args.loss:
        if args.component != "codec":
            raise UsageError(f"--loss sets codec loss weights (CodecLossConfig); {args.component} has none to set")
        from soundstage.codec.losses import CodecLossConfig

        task_options["loss_config"] = apply_overrides(CodecLossConfig(), args.loss, "loss option")
    if args.set:
        task_options["model_config"] = apply_overrides(preset_config, args.set, "model option")
    if args.data_option:
        if args.component != "codec":
            raise UsageError(f"--data-option sets codec data options (CodecDataConfig); not for {args.component}")
        from soundstage.train.codec_task import CODEC_DATA_DEFAULTS

        task_options["data_config"] = apply_overrides(CODEC_DATA_DEFAULTS[args.preset], args.data_option, "data option")
    if args.codec is not None:
        if args.component != "dit":
            raise UsageError("--codec names the codec of a DiT's latent folder; it applies to `train dit` only")
        task_options["codec"] = args.codec
    task = make_task(args.preset, args.data, config, **task_options)
    if args.init_from is not None:
        task.model.init_from_pretrained(args.init_from)
    exported = run_training(task, config, resume=args.resume)
    print(f"exported EMA weights to {exported}")


def _calibrate(args: argparse.Namespace) -> None:
    from soundstage.codec.calibrate import calibrate_codec

    calibrate_codec(args.model, args.data, args.out, split=args.split, max_clips=args.max_clips)


def _evaluate(args: argparse.Namespace) -> None:
    if args.component == "generated":
        _evaluate_generated(args)
        return
    given = [flag for flag in ("gen", "ref", "gen_split", "ref_split", "plots", "sfx_model", "cache", "no_cache",
                               "threads")
             if getattr(args, flag) not in (None, False)]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} is an option of `evaluate generated`, not of "
                         f"`evaluate {args.component}`")
    if args.data is None:
        raise UsageError(f"evaluate {args.component} needs --data DIR (an FOA dataset folder)")
    if args.component == "codec":
        from soundstage.codec.evaluate import evaluate_codec

        result = evaluate_codec(args.model, args.data, split=args.split, out_json=args.out, max_clips=args.max_clips)
        written = [args.out, result.get("plot")]
    else:
        from soundstage.elsa_encoder.evaluate import evaluate_elsa

        results = evaluate_elsa(args.model, args.data, split=args.split, out_dir=args.out)
        written = [results["results_json"], *results["plots"].values()]
    for path in written:
        if path is not None:
            print(f"wrote {path}")


def _evaluate_generated(args: argparse.Namespace) -> None:
    from soundstage.evaluation.generated import evaluate_generated

    if args.gen is None or args.ref is None:
        raise UsageError("evaluate generated needs --gen DIR (generated clips) and --ref DIR (a dataset folder)")
    for flag in ("data", "split", "max_clips"):
        if getattr(args, flag) not in (None, "test"):
            raise UsageError(f"--{flag.replace('_', '-')} is not an option of `evaluate generated` (use --gen-split, "
                             "--ref-split)")
    results = evaluate_generated(args.gen, args.ref, out=args.out, plots=args.plots, gen_split=args.gen_split,
                                 ref_split=args.ref_split, elsa=args.model, sfx=args.sfx_model or "aisfx",
                                 cache_dir=None if args.no_cache else (args.cache or "default"),
                                 threads=args.threads or 1)
    print(results["table"])
    for path in (results["results_json"], *results.get("plots", {}).values()):
        print(f"wrote {path}")


def package_version() -> str:
    """The installed distribution's version, else the package's own (a source tree run without installing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("soundstage")
    except PackageNotFoundError:
        from soundstage import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundstage", description="Spatial audio (first-order ambisonics) generation, data, training and evaluation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback when a command fails")
    parser.add_argument("--version", action="version", version=f"soundstage {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="build corpora and spatial datasets").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND"
    )
    sfx = data.add_parser("sfx", help="real sound-effect corpus (mono) from Debian packages")
    sfx.add_argument("--out", type=Path, required=True, help="output corpus folder")
    sfx.add_argument("--cache", type=Path, default=None, help="where .deb packages are kept (default ~/.cache/soundstage)")
    sfx.add_argument("--package", action="append", default=None, help="only this package (repeatable; default: all)")
    sfx.add_argument("--max-class-fraction", type=positive_float, default=0.05,
                     help="cap any class at this share of the corpus (default 0.05)")
    sfx.set_defaults(handler=_data_sfx)

    review = data.add_parser("sfx-review", help="measure every audio member of the packages, for curating captions")
    review.add_argument("--out", type=Path, required=True, help="review sheet (CSV)")
    review.add_argument("--cache", type=Path, default=None, help="where .deb packages are kept")
    review.add_argument("--package", action="append", default=None, help="only this package (repeatable)")
    review.set_defaults(handler=_data_sfx_review)

    imp = data.add_parser("import", help="import your own mono clips with captions (AudioCaps/Clotho-style CSV)")
    imp.add_argument("--csv", type=Path, required=True, help="CSV with columns file, caption[, class, licence]")
    imp.add_argument("--audio-root", type=Path, required=True, help="folder the CSV's file paths are relative to")
    imp.add_argument("--out", type=Path, required=True, help="output corpus folder")
    imp.set_defaults(handler=_data_import)

    spa = data.add_parser("spatialize", help="mono corpus -> FOA dataset in simulated rooms")
    spa.add_argument("--in", dest="in_dir", type=Path, required=True, help="mono corpus folder (manifest.jsonl)")
    spa.add_argument("--out", type=Path, required=True, help="output FOA dataset folder")
    spa.add_argument("--per-clip", type=int_at_least(1), default=2, help="spatial versions per source clip (default 2)")
    spa.add_argument("--sample-rate", type=int, default=24000,
                     help="output sample rate in Hz, 8000 to 96000 (default 24000)")
    spa.add_argument("--seed", type=int, default=0)
    spa.add_argument("--workers", type=int_at_least(1), default=1, help="worker processes")
    spa.add_argument("--shard", type=int_at_least(0), default=0, help="this job's shard index (array jobs)")
    spa.add_argument("--num-shards", type=int_at_least(1), default=1, help="total number of shards")
    spa.set_defaults(handler=_data_spatialize)

    enc = data.add_parser("encode", help="FOA dataset -> latent folder for DiT training (codec posterior, K yaws each)")
    enc.add_argument("--codec", default="small", help="codec folder or bundled name (default: small)")
    enc.add_argument("--data", type=Path, required=True, help="FOA dataset folder (manifest.jsonl)")
    enc.add_argument("--out", type=Path, required=True, help="output latent folder (resumable)")
    enc.add_argument("--rotations", type=int_at_least(1), default=None, metavar="K",
                     help="yaw versions per clip, the first as recorded (default 4)")
    enc.add_argument("--seed", type=int, default=0, help="seeds the yaws and regenerated captions")
    enc.add_argument("--shard", type=int_at_least(0), default=0, help="this job's shard index (array jobs)")
    enc.add_argument("--num-shards", type=int_at_least(1), default=1, help="total number of shards")
    enc.set_defaults(handler=_data_encode)

    foa = commands.add_parser("foa", help="analyse, preview, convert and rotate FOA files").add_subparsers(
        dest="foa_command", required=True, metavar="FOA_COMMAND"
    )
    analyze = foa.add_parser("analyze", help="broadband direction, diffuseness and level of an AmbiX file")
    analyze.add_argument("file", type=Path)
    analyze.add_argument("--plot", type=Path, default=None, help="save a direction energy map PNG here")
    preview = foa.add_parser("preview", help="binaural (headphones) or stereo preview of an AmbiX file")
    preview.add_argument("file", type=Path)
    preview.add_argument("--out", type=Path, required=True)
    preview.add_argument("--kind", choices=("binaural", "stereo"), default="binaural")
    convert = foa.add_parser("convert", help="convert between AmbiX (ACN/SN3D) and FuMa")
    convert.add_argument("file", type=Path)
    convert.add_argument("--out", type=Path, required=True)
    convert.add_argument("--to", choices=("ambix", "fuma"), required=True, help="target convention")
    rotate = foa.add_parser("rotate", help="rotate the sound scene (degrees, any finite value, periodic in 360; "
                                           "yaw +90 turns front to left)")
    rotate.add_argument("file", type=Path)
    rotate.add_argument("--out", type=Path, required=True)
    for angle in ("yaw", "pitch", "roll"):
        rotate.add_argument(f"--{angle}", type=finite_float, default=0.0)
    for sub in (analyze, preview, convert, rotate):
        sub.set_defaults(handler=_foa)

    gen = commands.add_parser(
        "generate", help="text -> first-order ambisonics (4-channel AmbiX WAV)",
        description="Generate FOA from text. Without --mode, any spatial number or --trajectory means parametric "
                    "mode, else descriptive (the prompt says where, e.g. 'a dog barks on the left'). Angles in "
                    "degrees (azimuth +90 = left; any real number, wrapped), distance in m, floor area in m2, T30 and "
                    "seconds in s. Writes 4-channel AmbiX (ACN/SN3D): .wav as 32-bit float, .flac as 24-bit.")
    gen.add_argument("prompt", nargs="?", default=None, metavar="PROMPT", help="what to hear (not with --batch)")
    gen.add_argument("--out", type=Path, default=None, metavar="FILE.wav",
                     help="output file: .wav (32-bit float) or .flac (24-bit), in an existing folder")
    gen.add_argument("--mode", choices=("descriptive", "parametric"), default=None)
    gen.add_argument("--azimuth", type=finite_float, default=None, metavar="DEG", help="+90 = left, -90 = right")
    gen.add_argument("--elevation", type=finite_float, default=None, metavar="DEG", help="[-90, 90]; default 0 "
                     "with --azimuth")
    gen.add_argument("--distance", type=finite_float, default=None, metavar="M")
    gen.add_argument("--floor-area", type=finite_float, default=None, metavar="M2")
    gen.add_argument("--t30", type=finite_float, default=None, metavar="S", help="reverberation time")
    gen.add_argument("--seconds", type=finite_float, default=None, metavar="S",
                     help="clip length (default: 5 s, or the model's maximum if shorter)")
    gen.add_argument("--steps", type=int_at_least(1), default=None, help="sampling steps (default: the model's)")
    gen.add_argument("--cfg-scale", type=finite_float, default=None, metavar="G",
                     help="classifier-free guidance scale >= 0 (1 = no guidance; default: the model's)")
    gen.add_argument("--negative-prompt", default=None, metavar="TEXT", help="what to steer away from")
    gen.add_argument("--seed", type=int_at_least(0), default=None, help="default: drawn, and printed")
    gen.add_argument("--trajectory", default=None, metavar="T:AZ:EL,...",
                     help="moving source: keyframes of seconds:azimuth:elevation, e.g. '0:90:0,4:-90:0'")
    gen.add_argument("--rotate", type=rotation_angles, default=None, metavar="YAW[,PITCH,ROLL]",
                     help="rotate the result exactly (degrees; yaw +90 turns front to left); write a negative yaw "
                          "as --rotate=-90")
    gen.add_argument("--init-audio", type=Path, default=None, metavar="FILE",
                     help="start from this audio (FOA, or mono placed at the requested direction) for variations")
    gen.add_argument("--init-strength", type=finite_float, default=None, metavar="X",
                     help="(0, 1]: how far from --init-audio (1 = ignore it; default 0.7)")
    gen.add_argument("--preview", choices=("binaural", "stereo"), action="append", default=None,
                     help="also write FILE.binaural.wav (headphones) or FILE.stereo.wav (16-bit; repeatable)")
    gen.add_argument("--no-direction-lock", action="store_true",
                     help="do not impose the requested direction (the numbers, or in descriptive mode the direction "
                          "the prompt names in words, e.g. 'on the left') on the codec's direction track")
    gen.add_argument("--sampler", choices=("euler", "heun"), default="euler")
    gen.add_argument("--model", default="small", metavar="small|DIR",
                     help="bundled model name or generation folder (codec/, dit/, elsa/); default: small")
    gen.add_argument("--batch", type=Path, default=None, metavar="prompts.jsonl",
                     help="one JSON request per line (keys id, prompt, mode, azimuth_deg, elevation_deg, distance_m, "
                          "floor_area_m2, t30_s, seconds, seed, steps, cfg_scale, negative_prompt, trajectory); "
                          "exit status 2 if any row failed")
    gen.add_argument("--out-dir", type=Path, default=None, metavar="DIR",
                     help="with --batch: DIR/<id>.wav (32-bit float) and DIR/manifest.jsonl; a re-run skips done rows")
    gen.set_defaults(handler=_generate)

    app = commands.add_parser("app", help="browser app: prompt, place the sound on a map, listen, download AmbiX",
                              description="Serve the Soundstage app (gradio) until Ctrl-C. The generate action is "
                                          "also an API endpoint, /generate, for gradio_client scripts.")
    app.add_argument("--model", default="small", metavar="small|DIR",
                     help="bundled model name or generation folder (codec/, dit/, elsa/); default: small")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only; any other is served with a "
                          "warning, e.g. 0.0.0.0 for the local network)")
    app.add_argument("--port", type=int_at_least(1), default=7860)
    app.add_argument("--concurrency", type=int_at_least(1), default=1,
                     help="generations running at once, at most one per CPU core (default 1)")
    app.add_argument("--max-queue", type=int_at_least(1), default=16,
                     help="requests that may wait for their turn; more are refused (default 16)")
    app.set_defaults(handler=_app)

    train = commands.add_parser("train", help="train a component (resumable)")
    train.add_argument("component", choices=("codec", "elsa", "dit"))
    train.add_argument("--preset", choices=PRESETS, default="small")
    train.add_argument("--data", type=Path, required=True,
                       help="FOA dataset folder (dit: a latent folder made by `soundstage data encode`)")
    train.add_argument("--codec", default=None, metavar="MODEL",
                       help="dit only: the codec that encoded --data, to decode validation clips (default: small)")
    train.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, exported model/")
    train.add_argument("--steps", type=int_at_least(1), default=None, help="total training steps (default: the preset's)")
    train.add_argument("--batch-size", type=int_at_least(1), default=None, help="per process and micro-batch")
    train.add_argument("--grad-accum", type=int_at_least(1), default=None, metavar="N",
                       help="micro-batches per optimiser step (default 1): the same update as an N times larger batch")
    train.add_argument("--lr", type=positive_float, default=None, help="peak learning rate")
    train.add_argument("--ema-decay", type=decay_rate, default=None,
                       help="decay per step of the exported weight average (default: the preset's); a short "
                            "fine-tune wants a smaller one, e.g. 0.99, or the export still leans on its start")
    train.add_argument("--workers", type=int_at_least(0), default=None, help="data-loader worker processes")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None)
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    train.add_argument("--init-from", default=None, metavar="MODEL",
                       help="fine-tune: start from this model folder or bundled name (same preset), not from scratch")
    train.add_argument("--loss", action="append", default=[], metavar="NAME=VALUE",
                       help="codec only: override a CodecLossConfig field, e.g. --loss broadband_weight=5 (repeatable)")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a field of the preset's model config, e.g. --set dim=256; a dotted name "
                            "reaches a nested config, e.g. --set conditioners.text_dropout=0.2 (repeatable)")
    train.add_argument("--data-option", action="append", default=[], metavar="NAME=VALUE",
                       help="codec only: override a CodecDataConfig field, e.g. --data-option pitched_fraction=0.3 "
                            "or --data-option tone_gate_step=2000 (repeatable)")
    train.add_argument("--train-only", action="append", default=[], metavar="PREFIX",
                       help="fine-tune only parameters whose names start with PREFIX, freezing the rest, e.g. "
                            "--train-only decoder.head (repeatable)")
    train.set_defaults(handler=_train)

    ev = commands.add_parser(
        "evaluate", help="evaluate a component or generated clips: prints a table, writes JSON (+ plots)",
        description="codec / elsa: a trained component on a dataset split (--data). generated: a folder of generated "
                    "FOA (--gen: `soundstage generate --batch` output or a dataset folder) against real clips (--ref: "
                    "a dataset folder): FAD/FAD-inf/KAD on aiSFX embeddings of W and of each channel, FAD/KAD on "
                    "ELSA, spatial CLAP, and localization against the requests.")
    ev.add_argument("component", choices=("codec", "elsa", "generated"))
    ev.add_argument("--model", default="small",
                    help="model folder or bundled preset name (default: small); generated: the ELSA it scores with")
    ev.add_argument("--data", type=Path, default=None, help="FOA dataset folder (codec, elsa)")
    ev.add_argument("--split", choices=("train", "valid", "test"), default="test", help="(codec, elsa)")
    ev.add_argument("--out", type=Path, default=None,
                    help="JSON file (codec, generated: default GEN/evaluation.json) or folder (elsa) for the results")
    ev.add_argument("--max-clips", type=int_at_least(1), default=None, help="evaluate at most this many clips (codec)")
    ev.add_argument("--gen", type=Path, default=None, metavar="DIR", help="generated: the clips to score")
    ev.add_argument("--ref", type=Path, default=None, metavar="DIR", help="generated: the reference dataset folder")
    ev.add_argument("--gen-split", choices=("train", "valid", "test"), default=None,
                    help="generated: only this split of a dataset given as --gen (default: all its clips)")
    ev.add_argument("--ref-split", choices=("train", "valid", "test"), default=None,
                    help="generated: only this split of --ref (default: all its clips)")
    ev.add_argument("--plots", type=Path, default=None, metavar="DIR", help="generated: write the PNG plots here")
    ev.add_argument("--sfx-model", default=None, metavar="DIR",
                    help="generated: aiSFX weights folder (default: the bundled soundstage/pretrained/aisfx)")
    ev.add_argument("--cache", type=Path, default=None, metavar="DIR",
                    help="generated: embedding cache, keyed by file content (default ~/.cache/soundstage/embeddings)")
    ev.add_argument("--no-cache", action="store_true", help="generated: embed every file again, keep nothing")
    ev.add_argument("--threads", type=int_at_least(1), default=None,
                    help="generated: torch CPU threads while embedding (default 1: fastest on a busy machine)")
    ev.set_defaults(handler=_evaluate)

    cal = commands.add_parser("calibrate", help="calibrate a trained codec for export: output level per "
                                 "frequency and per-channel latent statistics")
    cal.add_argument("component", choices=("codec",))
    cal.add_argument("--model", default="small", help="model folder or bundled preset name (default: small)")
    cal.add_argument("--data", type=Path, required=True, help="FOA dataset folder")
    cal.add_argument("--split", choices=("train", "valid", "test"), default="valid",
                     help="clips to measure on (default: valid; never the split you report)")
    cal.add_argument("--out", type=Path, required=True, help="folder for the calibrated codec (weights unchanged)")
    cal.add_argument("--max-clips", type=int_at_least(1), default=None, help="measure at most this many clips")
    cal.set_defaults(handler=_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user's error is one line on stderr and exit 2, Ctrl-C exit 130, a bug exit 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except SoundstageError as exc:
        return _fail(f"error: {exc}", 2, args.debug)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, args.debug)
    except Exception as exc:  # noqa: BLE001 -- anything else is a bug; still one line unless --debug
        return _fail(f"internal error ({type(exc).__name__}: {exc}); this is a bug, re-run with --debug for the "
                     "traceback", 1, args.debug)
    return 0


def _fail(message: str, code: int, debug: bool) -> int:
    """Print ``message`` as one line on stderr (after the traceback with ``--debug``) and return the exit code."""
    if debug:
        traceback.print_exc()
    print(f"soundstage: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
