"""``soundstage evaluate generated``: score a folder of generated FOA against a reference set of real clips.

Three kinds of measure (docs/evaluation.md says why each is computed the way it is):

1. **Semantic distance** on aiSFX (a pretrained sound-effects embedding, :mod:`soundstage.evaluation.aisfx`), one
   512-d row per 2.3-s block of each channel: FAD on W (``fad_w``), its value at infinitely many samples
   (``fad_w_inf``), KAD on W (``kad_w``), and FAD and KAD on each of W, Y, Z, X (``fad_channels``, ``kad_channels``).
2. **Spatial distance and agreement with the prompt** on ELSA (one row per clip, whole clip up to 10 s):
   ``fad_elsa``, ``kad_elsa``; ``spatial_clap`` = mean cosine of ELSA(audio) and ELSA(text of its prompt),
   ``spatial_clap_ref`` = the same for the reference clips with their own captions (the ceiling) and
   ``spatial_clap_ref_mismatched`` = reference audio with the other clips' captions (the floor).
3. **Localization** against the request: ``direction_error_deg`` = median great circle between the requested
   direction and the clip's broadband active-intensity DOA; ``direction_error_deg_framewise`` = median over clips of
   the median error of its 40-ms frames within 30 dB of the loudest; ``azimuth_l1_deg`` (wrapped) and
   ``elevation_l1_deg`` = mean absolute errors of the broadband DOA; ``distance_l1_m``, ``t30_l1_s``,
   ``floor_area_l1_m2`` = mean absolute errors of ELSA's regression heads. Clips without a requested value (or
   with a trajectory, for direction) are left out of that measure; ``null`` when no clip has one.
4. **Level**: each clip's W RMS in dBFS over the whole clip (the measure the corpus is normalised by, so real clips
   sit near one value): ``w_level_dbfs_median`` and its offset from the reference set's median
   (``w_level_offset_db``, negative = quieter) and the 1-D Wasserstein distance between the two sets' levels
   (``w_level_w1_db``). The distances above say how far apart two sets lie, not how much quieter one is.

Embeddings and measured directions are cached per file content hash and model
(:class:`~soundstage.evaluation.clips.EmbeddingCache`), so a reference set is embedded once and a re-run costs only
the new files.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
import torch
from tqdm.auto import tqdm

from soundstage.codec.fingerprint import codec_fingerprint as module_fingerprint
from soundstage.common.audio import AudioError, load_audio, w_rms
from soundstage.common.pretrained import CONFIG_NAME, FormatError, resolve_pretrained
from soundstage.elsa_encoder import ELSA
from soundstage.foa import great_circle_deg
from soundstage.metrics import distribution as dist
from soundstage.metrics.spatial_metrics import (
    FRAME_SECONDS,
    GATE_DB,
    azimuth_error_deg,
    doa_deg,
    gated_framewise_doa,
    median_frame_error_deg,
)

from .aisfx import AiSFX
from .clips import Clip, ClipSet, EmbeddingCache, EvaluationInputError, default_cache_dir, file_sha256, read_clip_set

logger = logging.getLogger(__name__)

CHANNELS = ("W", "Y", "Z", "X")  # AmbiX ACN order
ELSA_MAX_SECONDS = 10.0
MIN_SECONDS = 0.1  # shorter files are refused: no 40-ms frame analysis or embedding block is meaningful
DOA_ID = f"doa-v1-{FRAME_SECONDS * 1000:g}ms-{GATE_DB:g}dB"  # the measured directions, cached like the embeddings
LEVEL_ID = "w-rms-dbfs-v1"  # the W level, cached the same way
HEAD_KEYS = {"distance_m": "distance_l1_m", "t30_s": "t30_l1_s", "floor_area_m2": "floor_area_l1_m2"}


def load_aisfx(path: str | Path = "aisfx") -> AiSFX:
    """The aiSFX embedder from a folder or the bundled ``"aisfx"``; a clear error when its weights are missing."""
    folder = resolve_pretrained(path, "aisfx")
    if not (folder / CONFIG_NAME).is_file():
        raise FormatError(f"{folder}: no aiSFX weights ({CONFIG_NAME} + model.safetensors). The bundled ones live in "
                          "soundstage/pretrained/aisfx/ (rebuilt by tools/convert_aisfx.py from the aisfx wheel); "
                          "or pass --sfx-model DIR")
    return AiSFX.from_pretrained(folder)


# ----------------------------------------------------------------------------------------------------------------
# Per clip
# ----------------------------------------------------------------------------------------------------------------


class ClipAnalyser:
    """Loads each clip once and returns its embeddings and W level (cached by content hash) and its measured
    direction."""

    def __init__(self, sfx: AiSFX, elsa: ELSA, cache: EmbeddingCache) -> None:
        self.sfx, self.elsa, self.cache = sfx, elsa, cache
        self.sfx_id = f"aisfx-{module_fingerprint(sfx)}-hop{sfx.config.block_hop_frames}"
        self.elsa_id = f"elsa-{module_fingerprint(elsa)}-{ELSA_MAX_SECONDS:g}s"

    def __call__(self, clip: Clip, sample_rate: int, localize: bool = True) -> dict[str, Any]:
        """Embeddings and W level of ``clip``; with ``localize`` and a requested direction also its measured
        directions."""
        sha = file_sha256(clip.path)
        sfx, elsa = self.cache.get(self.sfx_id, sha), self.cache.get(self.elsa_id, sha)
        level = self.cache.get(LEVEL_ID, sha)
        localize = localize and clip.direction is not None
        doa = self.cache.get(DOA_ID, sha) if localize else None
        audio = None
        if sfx is None or elsa is None or level is None or (localize and doa is None):
            try:
                audio, _ = load_audio(clip.path, channels=4, min_samples=round(MIN_SECONDS * sample_rate),
                                      silence="warn")
            except AudioError as exc:  # it names the file already
                raise EvaluationInputError(str(exc)) from None
        if sfx is None:
            sfx = self.sfx.embed(audio, sample_rate).numpy()  # (4, blocks, 512): one row of blocks per channel
            self.cache.put(self.sfx_id, sha, sfx)
        if elsa is None:
            with torch.inference_mode():
                limit = round(ELSA_MAX_SECONDS * sample_rate)
                elsa = self.elsa.embed_audio(audio[:, :limit], sample_rate)[0].cpu().numpy()
            self.cache.put(self.elsa_id, sha, elsa)
        if level is None:
            level = np.array([w_level_dbfs(audio)])
            self.cache.put(LEVEL_ID, sha, level)
        out: dict[str, Any] = {"sha256": sha, "sfx": sfx.astype(np.float32), "elsa": elsa.astype(np.float32),
                               "w_level_dbfs": float(level[0])}
        if localize:
            if doa is None:
                # column 0: the broadband DOA; then one column per 40-ms frame: azimuth, elevation, kept by the gate
                doa = np.concatenate([np.array([[*doa_deg(audio), 1.0]]).T,
                                      np.stack(gated_framewise_doa(audio, sample_rate)).astype(np.float64)], axis=1)
                self.cache.put(DOA_ID, sha, doa)
            out["doa"] = (float(doa[0, 0]), float(doa[1, 0]))
            out["framewise_error"] = median_frame_error_deg(doa[0, 1:], doa[1, 1:], doa[2, 1:] > 0.5,
                                                            *clip.direction)
        return out


def w_level_dbfs(foa: np.ndarray) -> float:
    """W's RMS over the whole ``(4, T)`` clip in dBFS (floored at -200 dBFS for digital silence)."""
    return 20.0 * math.log10(max(w_rms(foa), 1e-10))


def level_measures(gen: Sequence[float], ref: Sequence[float]) -> dict[str, float]:
    """The generated set's median W level, its offset from the reference median and the W1 distance (all dB)."""
    return {"w_level_dbfs_median": float(np.median(gen)), "w_level_ref_dbfs_median": float(np.median(ref)),
            "w_level_offset_db": float(np.median(gen) - np.median(ref)),
            "w_level_w1_db": float(scipy.stats.wasserstein_distance(gen, ref))}


def analyse_set(analyser: ClipAnalyser, clip_set: ClipSet, desc: str, progress: bool,
                localize: bool) -> list[dict[str, Any]]:
    return [analyser(clip, clip_set.sample_rate, localize)
            for clip in tqdm(clip_set.clips, desc=desc, unit="clip", disable=not progress)]


# ----------------------------------------------------------------------------------------------------------------
# Set-level measures
# ----------------------------------------------------------------------------------------------------------------


def _rows(analysed: Sequence[dict[str, Any]], channel: int) -> tuple[np.ndarray, np.ndarray]:
    """aiSFX rows of one channel for every block of every clip, and the clip index of each row."""
    blocks = [a["sfx"][channel] for a in analysed]
    owner = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks)])
    return np.concatenate(blocks), owner


def distance_block(gen: np.ndarray, ref: np.ndarray, name: str, warnings: list[str]) -> dict[str, Any]:
    """FAD, KAD (median-distance bandwidth), effective dimension, and a sample-size warning for two row sets."""
    dimension = dist.effective_dimension(gen, ref)
    warning = dist.sample_size_warning(name, len(gen), len(ref), dimension)
    if warning:
        warnings.append(warning)
    bandwidth = dist.median_bandwidth(gen, ref)
    return {"fad": dist.fad(gen, ref), "kad": dist.kad(gen, ref, bandwidth), "kernel_bandwidth": bandwidth,
            "effective_dimension": dimension, "rows_gen": len(gen), "rows_ref": len(ref)}


def _cosines(audio: np.ndarray, text: np.ndarray) -> np.ndarray:
    return (audio * text).sum(-1) / (np.linalg.norm(audio, axis=-1) * np.linalg.norm(text, axis=-1))


def spatial_clap(elsa: ELSA, audio: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """Per-clip cosine of ELSA audio and text embeddings, and the mean cosine over mismatched pairs (i != j)."""
    unique = list(dict.fromkeys(texts))
    with torch.inference_mode():
        table = torch.cat([elsa.embed_text(unique[i:i + 256]).cpu() for i in range(0, len(unique), 256)]).numpy()
    text = table[[unique.index(t) for t in texts]]
    matched = _cosines(audio, text)
    a = audio / np.linalg.norm(audio, axis=-1, keepdims=True)
    t = text / np.linalg.norm(text, axis=-1, keepdims=True)
    similarity = a @ t.T
    n = len(texts)
    mismatched = float((similarity.sum() - np.trace(similarity)) / (n * (n - 1))) if n > 1 else math.nan
    return matched, mismatched


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _median(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def localization(clips: Sequence[Clip], analysed: Sequence[dict[str, Any]], heads: dict[str, np.ndarray],
                 rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Direction errors from the broadband and framewise DOA, and the ELSA heads' L1 errors; fills ``rows``."""
    broadband, framewise, az_l1, el_l1 = [], [], [], []
    for i, (clip, result, row) in enumerate(zip(clips, analysed, rows)):
        row["elsa_heads"] = {k: float(v[i]) for k, v in heads.items()}
        if clip.direction is not None:
            azimuth, elevation = result["doa"]
            error = float(great_circle_deg(azimuth, elevation, *clip.direction))
            row.update({"measured_azimuth_deg": azimuth, "measured_elevation_deg": elevation,
                        "direction_error_deg": error, "direction_error_deg_framewise": result["framewise_error"],
                        "azimuth_error_deg": float(azimuth_error_deg(azimuth, clip.direction[0])),
                        "elevation_error_deg": abs(elevation - clip.direction[1])})
            broadband.append(error)
            framewise.append(result["framewise_error"])
            az_l1.append(row["azimuth_error_deg"])
            el_l1.append(row["elevation_error_deg"])
    out: dict[str, Any] = {
        "direction_error_deg": _median(broadband), "direction_error_deg_mean": _mean(broadband),
        "direction_error_deg_framewise": _median(framewise),
        "azimuth_l1_deg": _mean(az_l1), "elevation_l1_deg": _mean(el_l1), "direction_clips": len(broadband),
    }
    for key, name in HEAD_KEYS.items():
        errors = []
        for clip, row in zip(clips, rows):
            if clip.request.get(key) is not None:
                row[f"{key}_error"] = abs(row["elsa_heads"][key] - float(clip.request[key]))  # type: ignore[arg-type]
                errors.append(row[f"{key}_error"])
        out[name] = _mean(errors)
        out[f"{name}_clips"] = len(errors)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def evaluate_generated(
    gen: str | Path,
    ref: str | Path,
    out: str | Path | None = None,
    plots: str | Path | None = None,
    gen_split: str | None = None,
    ref_split: str | None = None,
    elsa: ELSA | str | Path = "small",
    sfx: AiSFX | str | Path = "aisfx",
    cache_dir: str | Path | None = "default",
    seed: int = 0,
    progress: bool = True,
    threads: int = 1,
) -> dict[str, Any]:
    """Every measure of the module docstring for the clips of ``gen`` against those of ``ref``.

    Args:
        gen: a ``soundstage generate --batch`` folder or a dataset folder (``gen_split`` of it; all clips if None).
        ref: a dataset folder (``ref_split`` of it; all clips if None).
        out: JSON file to write (default: ``<gen>/evaluation.json``); ``plots``: a folder for the PNG plots.
        elsa / sfx: the ELSA and aiSFX models (objects, folders or bundled names).
        cache_dir: embedding cache folder; ``"default"`` is ``~/.cache/soundstage/embeddings``, None disables it.
        threads: torch CPU threads while embedding. Each clip is a small job (a 4-s clip: 8 aiSFX blocks, one ELSA
            pass); on a busy 2-core machine two threads were 5x slower per clip than one (OpenMP threads wait for
            each other while descheduled), so the default is 1; more pays off only on an idle many-core machine.

    Returns:
        The results (also written as JSON), with ``table`` the printed text.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    gen_set = read_clip_set(gen, "--gen", gen_split)
    ref_set = read_clip_set(ref, "--ref", ref_split, dataset_only=True)
    if gen_set.sample_rate != ref_set.sample_rate:
        raise EvaluationInputError(f"--gen clips are at {gen_set.sample_rate} Hz ({gen_set.clips[0].path}) but --ref "
                                   f"clips at {ref_set.sample_rate} Hz ({ref_set.clips[0].path}); both sets must "
                                   "share one rate")
    for clip_set, option in ((gen_set, "--gen"), (ref_set, "--ref")):
        if len(clip_set.clips) < 2:
            raise EvaluationInputError(f"{option} {clip_set.folder}: {len(clip_set.clips)} clip; distances between "
                                       "sets need at least 2 clips in each")
    elsa_model = elsa if isinstance(elsa, ELSA) else ELSA.from_pretrained(elsa)
    sfx_model = sfx if isinstance(sfx, AiSFX) else load_aisfx(sfx)
    cache = EmbeddingCache(default_cache_dir() if cache_dir == "default" else cache_dir)
    analyser = ClipAnalyser(sfx_model, elsa_model.eval(), cache)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen_results = analyse_set(analyser, gen_set, "embed --gen clips", progress, localize=True)
        ref_results = analyse_set(analyser, ref_set, "embed --ref clips", progress, localize=False)
    finally:
        torch.set_num_threads(previous_threads)
    embedded = time.perf_counter()

    warnings: list[str] = []
    channels: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(CHANNELS):
        (gen_rows, gen_owner), (ref_rows, _) = _rows(gen_results, c), _rows(ref_results, c)
        channels[name] = distance_block(gen_rows, ref_rows, f"aiSFX {name}", warnings)
        if name == "W":
            fad_w_inf = dist.fad_inf(gen_rows, ref_rows, seed=seed) if len(gen_rows) >= 4 else None
            contributions = dist.kad_contributions(gen_rows, ref_rows, channels[name]["kernel_bandwidth"])
            per_clip_kad = np.bincount(gen_owner, weights=contributions, minlength=len(gen_results))
    gen_elsa = np.stack([a["elsa"] for a in gen_results])
    ref_elsa = np.stack([a["elsa"] for a in ref_results])
    elsa_block = distance_block(gen_elsa, ref_elsa, "ELSA", warnings)

    gen_clap, gen_mismatched = spatial_clap(elsa_model, gen_elsa, [c.text for c in gen_set.clips])
    ref_clap, ref_mismatched = spatial_clap(elsa_model, ref_elsa, [c.text for c in ref_set.clips])
    with torch.inference_mode():
        heads = {k: v.cpu().numpy() for k, v in elsa_model.spatial_from_embedding(torch.from_numpy(gen_elsa)).items()}

    rows: list[dict[str, Any]] = []
    for i, (clip, result) in enumerate(zip(gen_set.clips, gen_results)):
        rows.append({"path": str(clip.path.relative_to(gen_set.folder)), "id": clip.record.get("id"),
                     "text": clip.text, "request": clip.request, "moving": clip.moving, "sha256": result["sha256"],
                     "sfx_blocks": int(result["sfx"].shape[1]), "spatial_clap": float(gen_clap[i]),
                     "w_level_dbfs": result["w_level_dbfs"],
                     "kad_w_contribution": float(per_clip_kad[i])})
    located = localization(gen_set.clips, gen_results, heads, rows)

    results: dict[str, Any] = {
        "n_gen": len(gen_set.clips), "n_ref": len(ref_set.clips),
        "fad_w": channels["W"]["fad"], "fad_w_inf": None if fad_w_inf is None else fad_w_inf.value,
        "kad_w": channels["W"]["kad"],
        "fad_channels": {k: v["fad"] for k, v in channels.items()},
        "kad_channels": {k: v["kad"] for k, v in channels.items()},
        "fad_elsa": elsa_block["fad"], "kad_elsa": elsa_block["kad"],
        "spatial_clap": float(gen_clap.mean()), "spatial_clap_mismatched": gen_mismatched,
        "spatial_clap_ref": float(ref_clap.mean()), "spatial_clap_ref_mismatched": ref_mismatched,
        **located,
        **level_measures([a["w_level_dbfs"] for a in gen_results], [a["w_level_dbfs"] for a in ref_results]),
        "warnings": warnings,
        "details": {
            "aisfx": {"channels": channels, "fad_w_inf_fit": None if fad_w_inf is None else fad_w_inf.as_dict(),
                      "rows": "one per 2.3-s block (50-frame hop) of each clip", "model_id": analyser.sfx_id},
            "elsa": {**elsa_block, "rows": f"one per clip (first {ELSA_MAX_SECONDS:g} s)", "model_id": analyser.elsa_id},
            "kad": "unbiased MMD^2, RBF kernel exp(-d^2 / (2 s^2)), s = median pairwise distance of the pooled rows",
            "framewise": f"{FRAME_SECONDS * 1000:g}-ms frames within {GATE_DB:g} dB of the loudest",
        },
        "gen": {"folder": str(gen_set.folder), "kind": gen_set.kind, "split": gen_split,
                "sample_rate": gen_set.sample_rate},
        "ref": {"folder": str(ref_set.folder), "split": ref_split, "sample_rate": ref_set.sample_rate},
        "timing": {"embed_s": embedded - started, "total_s": 0.0, "threads": threads, "cache_hits": cache.hits,
                   "cache_misses": cache.misses, "cache_dir": None if cache.root is None else str(cache.root)},
        "clips": rows,
    }
    if plots is not None:
        from .plots import write_plots

        results["plots"] = write_plots(Path(plots), results, gen_results, ref_results)
    results["timing"]["total_s"] = time.perf_counter() - started
    results["timing"]["cpu_s"] = time.process_time() - cpu_started  # all threads: wall time on an idle machine x cores
    out_path = Path(out) if out is not None else gen_set.folder / "evaluation.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(_finite(results), indent=2, allow_nan=False, default=_json_default) + "\n")
    results["results_json"] = str(out_path)
    results["table"] = format_table(results)
    return results


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN), recursively."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _value(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


TABLE_ROWS = (
    ("fad_w", "FAD aiSFX, W", 3), ("fad_w_inf", "FAD-inf aiSFX, W", 3), ("kad_w", "KAD aiSFX, W", 4),
    ("fad_Y", "FAD aiSFX, Y", 3), ("fad_Z", "FAD aiSFX, Z", 3), ("fad_X", "FAD aiSFX, X", 3),
    ("fad_elsa", "FAD ELSA", 4), ("kad_elsa", "KAD ELSA", 4),
    ("spatial_clap", "spatial CLAP (ELSA)", 3), ("spatial_clap_mismatched", "  mismatched pairs", 3),
    ("spatial_clap_ref", "spatial CLAP, ref (ceiling)", 3),
    ("spatial_clap_ref_mismatched", "  ref mismatched (floor)", 3),
    ("direction_error_deg", "direction error, median deg", 2),
    ("direction_error_deg_framewise", "  framewise (40 ms), deg", 2),
    ("azimuth_l1_deg", "azimuth L1 deg", 2), ("elevation_l1_deg", "elevation L1 deg", 2),
    ("distance_l1_m", "distance L1 m (ELSA head)", 3), ("t30_l1_s", "T30 L1 s (ELSA head)", 3),
    ("floor_area_l1_m2", "floor area L1 m2 (ELSA head)", 1),
    ("w_level_dbfs_median", "W level median, dBFS", 1), ("w_level_offset_db", "  minus the reference's, dB", 1),
    ("w_level_w1_db", "W level W1 distance, dB", 2),
)


def table_value(results: dict[str, Any], key: str) -> float | None:
    if key in ("fad_Y", "fad_Z", "fad_X"):
        return results["fad_channels"][key[-1]]
    return results.get(key)


def format_table(results: dict[str, Any]) -> str:
    lines = [f"{'generated vs reference':<32}{results['n_gen']:>6} vs {results['n_ref']} clips"]
    for key, label, digits in TABLE_ROWS:
        lines.append(f"{label:<32}{_value(table_value(results, key), digits):>12}")
    lines += [f"warning: {w}" for w in results["warnings"]]
    return "\n".join(lines)
