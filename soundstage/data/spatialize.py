"""Mono corpus -> FOA dataset: convolve each clip with simulated room responses and caption the result.

Layout of the output folder::

    manifest.jsonl        one record per FOA clip (the keys in docs/conventions.md + extras), when complete
    skipped.jsonl         every source clip or manifest line that was not used, with the reason
    audio/<key>_<v>.flac  4-channel AmbiX (W, Y, Z, X; SN3D) at the requested sample rate
    records/<key>.json    per-source-clip result, written atomically after its audio: the unit of resumption
    spatialize.json       the settings that change the result, written before the first clip, compared on resume
    parts/part-I-of-N.jsonl   each shard's records (array jobs)
    rir_bank/             the cached room responses (:class:`soundstage.data.rooms.RirBank`)
    stats.json, stats.png dataset statistics (:func:`write_dataset_stats`)

Splits: a source clip's split is a hash of its id (its manifest path), ~80/10/10, and it is only ever convolved
with rooms of the same split (the bank's rooms are partitioned per split), so no clip and no room crosses splits.
Everything random is seeded by ``(seed, clip)``, so results do not depend on worker count, sharding or resumption.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import oaconvolve
from tqdm.auto import tqdm

from ..common.audio import AudioError, load_audio, save_audio, w_rms
from ..common.errors import UsageError
from .captions import spatial_caption
from .manifest import MANIFEST_NAME, SPLITS, ManifestError, validate_record, write_jsonl, write_manifest
from .rooms import SPLIT_SHARES, BankConfig, RirBank
from .settings import check_settings, write_json_atomic
from .workers import imap_unordered

logger = logging.getLogger(__name__)

DEFAULT_BANK_SIZE = 512
MIN_SECONDS = 2.0  # shorter clips are repeated up to this length
MAX_SECONDS = 10.0  # longer clips are cropped to this length (seeded offset)
MIN_SOURCE_SECONDS = 0.05  # less than this after trimming is not a usable sound
SILENCE_PEAK = 1e-4  # a clip whose peak stays under -80 dBFS is silent
TRIM_THRESHOLD_DB = -50.0  # frames this far below the loudest frame count as leading/trailing silence
TARGET_RMS_DBFS = -20.0  # loudness target of the W channel
PEAK_LIMIT = 0.9  # no channel exceeds this after normalisation
SKIPPED_NAME = "skipped.jsonl"
SETTINGS_NAME = "spatialize.json"


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SpatializeReport:
    """What one call of :func:`spatialize_corpus` did."""

    out_dir: Path
    sources: int = 0  # usable records in the input manifest
    shard_clips: int = 0  # source clips that belong to this shard
    processed: int = 0  # source clips spatialised in this run
    reused: int = 0  # clips already finished by an earlier run
    skipped: int = 0  # clips (and bad manifest lines) of this shard not used
    skip_reasons: dict[str, int] = field(default_factory=dict)
    written: int = 0  # FOA files written in this run
    records: int = 0  # records in the assembled manifest (0 while other shards are unfinished)
    complete: bool = False  # manifest.jsonl has been assembled
    seconds: float = 0.0

    @property
    def manifest_path(self) -> Path | None:
        return self.out_dir / MANIFEST_NAME if self.complete else None

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skip_reasons.items())) or "none"
        state = f"manifest {self.manifest_path} ({self.records} FOA clips)" if self.complete else (
            "manifest not assembled yet (other shards unfinished)"
        )
        return (
            f"spatialized {self.processed} source clips ({self.written} FOA files) in {self.seconds:.1f} s; "
            f"{self.reused} already done; {self.skipped} skipped ({reasons}); "
            f"{self.shard_clips} clips in this shard of {self.sources}; {state}"
        )


# ----------------------------------------------------------------------------------------------------------------
# Source clips
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceClip:
    """One usable line of the mono manifest."""

    order: int  # position among usable records (fixes the output order)
    line: int  # 1-based line in the manifest
    record: dict[str, Any]

    @property
    def clip_id(self) -> str:
        return str(self.record["path"])

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha1(self.clip_id.encode()).hexdigest()

    @property
    def key(self) -> str:
        """File-name-safe unique key: readable stem + hash of the id."""
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(self.clip_id).stem).strip("-")[:40] or "clip"
        return f"{stem}-{self.digest[:10]}"

    @property
    def seed_key(self) -> int:
        return int(self.digest[:15], 16)


def clip_split(clip_id: str) -> str:
    """train / valid / test (~80/10/10) from a hash of the source clip id, independent of seed and order."""
    fraction = int(hashlib.sha1(f"split:{clip_id}".encode()).hexdigest()[:12], 16) / float(16**12)
    if fraction < SPLIT_SHARES["train"]:
        return "train"
    return "valid" if fraction < SPLIT_SHARES["train"] + SPLIT_SHARES["valid"] else "test"


def read_sources(in_dir: Path) -> tuple[list[SourceClip], list[dict[str, Any]]]:
    """Usable records of the mono manifest and skip entries for the lines that are not (never raises on a line).

    Raises:
        ManifestError: when there is no manifest at all.
    """
    path = in_dir / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest found (a mono corpus folder holds {MANIFEST_NAME} and its audio)")
    sources: list[SourceClip] = []
    skipped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        record: Any = None
        try:
            record = json.loads(line)
            validate_record(record, spatial=False)
        except (json.JSONDecodeError, ValueError) as exc:
            path_value = record.get("path") if isinstance(record, dict) else None
            skipped.append({"line": line_no, "path": path_value, "reason": "bad manifest record", "detail": str(exc)})
            continue
        if record["path"] in seen:
            skipped.append({"line": line_no, "path": record["path"], "reason": "duplicate path", "detail": ""})
            continue
        seen.add(record["path"])
        sources.append(SourceClip(order=len(sources), line=line_no, record=record))
    return sources, skipped


# ----------------------------------------------------------------------------------------------------------------
# Signal preparation
# ----------------------------------------------------------------------------------------------------------------


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = TRIM_THRESHOLD_DB) -> np.ndarray:
    """Drop leading/trailing 10 ms frames quieter than ``threshold_db`` below the loudest frame; ``(T,)`` -> ``(T',)``.

    10 ms of margin is kept on both sides so that soft onsets and decays are not clipped.
    """
    frame = max(1, int(0.01 * sample_rate))
    n_frames = math.ceil(audio.shape[0] / frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: audio.shape[0]] = audio
    energy = np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)
    active = np.nonzero(energy > energy.max() * 10.0 ** (threshold_db / 10.0))[0]
    start = max(0, (active[0] - 1) * frame)
    stop = min(audio.shape[0], (active[-1] + 2) * frame)
    return audio[start:stop]


def fit_length(
    audio: np.ndarray, sample_rate: int, rng: np.random.Generator, min_seconds: float, max_seconds: float
) -> np.ndarray:
    """Repeat a short ``(T,)`` clip to ``min_seconds`` or more; crop a long one to ``max_seconds`` (seeded offset)."""
    min_len, max_len = int(min_seconds * sample_rate), int(max_seconds * sample_rate)
    if audio.shape[0] < min_len:
        audio = np.tile(audio, math.ceil(min_len / audio.shape[0]))
    if audio.shape[0] > max_len:
        start = int(rng.integers(0, audio.shape[0] - max_len + 1))
        audio = audio[start : start + max_len].copy()
        fade = min(max_len // 2, int(0.01 * sample_rate))  # no click at the cut points
        ramp = np.linspace(0.0, 1.0, fade, dtype=audio.dtype)
        audio[:fade] *= ramp
        audio[-fade:] *= ramp[::-1]
    return audio


def normalize_loudness(foa: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale ``(4, T)`` FOA so that W sits at ``TARGET_RMS_DBFS`` and no channel peaks above ``PEAK_LIMIT``.

    Returns:
        ``(scaled, gain_db)``.
    """
    rms = w_rms(foa)
    peak = float(np.abs(foa).max())
    gain = 10.0 ** (TARGET_RMS_DBFS / 20.0) / max(rms, 1e-12)
    gain = min(gain, PEAK_LIMIT / max(peak, 1e-12))
    return (foa * gain).astype(np.float32), 20.0 * math.log10(gain)


def prepare_source(
    path: Path, sample_rate: int, rng: np.random.Generator, min_seconds: float, max_seconds: float
) -> tuple[np.ndarray, float]:
    """Load, check, trim and fit a mono clip: ``((T,) float32, trimmed source length in s)``.

    Raises:
        AudioError: unreadable, empty, non-finite, silent or too short.
    """
    audio, _ = load_audio(path, sample_rate=sample_rate, mono=True)
    mono = audio[0]
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        raise AudioError(f"{path}: silent (peak below {20 * math.log10(SILENCE_PEAK):.0f} dBFS)", "silent")
    mono = trim_silence(mono, sample_rate)
    if mono.shape[0] < MIN_SOURCE_SECONDS * sample_rate:
        raise AudioError(f"{path}: too short after trimming silence ({mono.shape[0] / sample_rate:.3f} s)",
                         "too_short")
    return fit_length(mono, sample_rate, rng, min_seconds, max_seconds), mono.shape[0] / sample_rate


# ----------------------------------------------------------------------------------------------------------------
# One clip (runs in worker processes)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipJob:
    """Everything a worker needs to spatialise one source clip."""

    source: SourceClip
    in_dir: str
    out_dir: str
    split: str
    rooms: tuple[int, ...]  # bank indices, one per spatial version
    bank: BankConfig
    sample_rate: int
    seed: int
    min_seconds: float
    max_seconds: float


# Per-process caches, keyed by folder *and* configuration: a bank's content is a function of its configuration.
@functools.lru_cache(maxsize=4)
def _open_bank(folder: str, config: BankConfig) -> RirBank:
    return RirBank(folder, config)


@functools.lru_cache(maxsize=64)
def _load_rir(folder: str, config: BankConfig, index: int) -> np.ndarray:
    return _open_bank(folder, config).load(index)


def _spatial_record(job: ClipJob, version: int, room: dict[str, Any], foa: np.ndarray, gain_db: float,
                    source_seconds: float) -> dict[str, Any]:
    source = job.source.record
    attributes = {k: float(room[k]) for k in ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")}
    rng = np.random.default_rng([job.seed, job.source.seed_key, version, 7])
    record = dict(
        path=f"audio/{job.source.key}_{version}.flac",
        sample_rate=job.sample_rate,
        num_frames=int(foa.shape[1]),
        caption=source["caption"],
        spatial_caption=spatial_caption(source["caption"], rng=rng, **attributes),
        **attributes,
        source=source["source"],
        licence=source["licence"],
        split=job.split,
    )
    record.update({k: v for k, v in source.items() if k not in record and k not in ("sample_rate", "num_frames")})
    record.update(
        source_clip=job.source.clip_id,
        version=version,
        room_id=room["room_id"],
        rir_index=int(room["index"]),
        drr_db=float(room["drr_db"]),
        t30_method=room["t30_method"],
        gain_db=gain_db,
        source_seconds=source_seconds,
    )
    return record


def process_clip(job: ClipJob) -> dict[str, Any]:
    """Spatialise one source clip into ``len(job.rooms)`` FOA files; returns (and stores) its result.

    The result ``{"status": "ok", "records": [...]}`` or ``{"status": "skipped", "reason", "detail"}`` is written to
    ``records/<key>.json`` after all audio files, atomically, so a killed run never leaves a half-finished clip
    marked done.
    """
    out_dir = Path(job.out_dir)
    bank_dir = str(out_dir / "rir_bank")
    rng = np.random.default_rng([job.seed, job.source.seed_key])
    try:
        mono, source_seconds = prepare_source(
            Path(job.in_dir) / job.source.clip_id, job.sample_rate, rng, job.min_seconds, job.max_seconds
        )
    except AudioError as exc:
        result = {"status": "skipped", "reason": exc.reason, "detail": str(exc), "path": job.source.clip_id,
                  "line": job.source.line}
        write_json_atomic(out_dir / "records" / f"{job.source.key}.json", result)
        return result
    records = []
    bank = _open_bank(bank_dir, job.bank)
    for version, room_index in enumerate(job.rooms):
        rir = _load_rir(bank_dir, job.bank, room_index)
        foa, gain_db = normalize_loudness(oaconvolve(mono[None, :], rir, axes=-1))
        record = _spatial_record(job, version, bank.records[room_index], foa, gain_db, source_seconds)
        save_audio(out_dir / record["path"], foa, job.sample_rate)
        records.append(record)
    result = {"status": "ok", "records": records}
    write_json_atomic(out_dir / "records" / f"{job.source.key}.json", result)
    return result


def _process_many(jobs: list[ClipJob], workers: int, progress: bool) -> Iterator[dict[str, Any]]:
    """Yield job results as they finish (:func:`soundstage.data.workers.imap_unordered`: Ctrl-C stops at once)."""
    with tqdm(total=len(jobs), desc="spatialize", unit="clip", disable=not progress) as bar:
        for result in imap_unordered(process_clip, [(job,) for job in jobs], workers):
            yield result
            bar.update()


# ----------------------------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------------------------


def _choose_rooms(source: SourceClip, pool: list[int], per_clip: int, seed: int) -> tuple[int, ...]:
    """``per_clip`` distinct rooms of the clip's split (with repeats only when the split has fewer rooms)."""
    rng = np.random.default_rng([seed, source.seed_key, 1])
    chosen = rng.choice(len(pool), size=per_clip, replace=len(pool) < per_clip)
    return tuple(int(pool[i]) for i in chosen)


def _read_result(out_dir: Path, source: SourceClip) -> dict[str, Any] | None:
    path = out_dir / "records" / f"{source.key}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:  # only possible if edited by hand: treat as unfinished
        return None


def _skip_entry(source: SourceClip, result: dict[str, Any]) -> dict[str, Any]:
    return {"line": source.line, "path": source.clip_id, "reason": result["reason"], "detail": result.get("detail", "")}


def assemble_dataset(in_dir: Path, out_dir: Path, write_stats: bool = True) -> int | None:
    """Merge the per-clip results into ``manifest.jsonl`` and ``skipped.jsonl`` once every clip is finished.

    Returns:
        the number of FOA records, or None when some clip (another shard's) is not finished yet.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    sources, skipped = read_sources(in_dir)
    records: list[dict[str, Any]] = []
    for source in sources:
        result = _read_result(out_dir, source)
        if result is None:
            return None
        if result["status"] == "ok":
            records.extend(result["records"])
        else:
            skipped.append(_skip_entry(source, result))
    skipped.sort(key=lambda entry: entry["line"])
    write_jsonl(out_dir / SKIPPED_NAME, skipped)
    if records:
        write_manifest(out_dir, records)
        if write_stats:
            write_dataset_stats(out_dir)
    else:
        logger.warning("%s: no clip could be spatialised; see %s", out_dir, SKIPPED_NAME)
    for leftover in (out_dir / "audio").glob("*.part"):
        leftover.unlink(missing_ok=True)
    return len(records)



def run_settings(per_clip: int, min_seconds: float, max_seconds: float, bank: BankConfig) -> dict[str, Any]:
    """The settings that change a dataset's content: recorded in ``spatialize.json``, compared on every resume."""
    return {"per_clip": per_clip, "sample_rate": bank.sample_rate, "seed": bank.seed, "bank_size": bank.size,
            "max_ism_order": bank.max_ism_order, "min_seconds": min_seconds, "max_seconds": max_seconds}


def _earlier_settings(out_dir: Path, requested: dict[str, Any]) -> dict[str, Any] | None:
    """The settings ``out_dir`` was made with, or None for a new folder."""
    path = out_dir / SETTINGS_NAME
    if path.exists():
        return json.loads(path.read_text())
    # A folder from before settings were recorded: its bank checks the rest, a finished clip tells its per_clip.
    for result_path in sorted((out_dir / "records").glob("*.json")):
        result = json.loads(result_path.read_text())
        if result["status"] == "ok":
            return {**requested, "per_clip": len(result["records"])}
    return None


def check_arguments(shard: int, num_shards: int, per_clip: int, min_seconds: float, max_seconds: float) -> None:
    """Refuse arguments that cannot make a dataset (before anything is written).

    Raises:
        UsageError: naming the argument and its value.
    """
    if not 0 <= shard < num_shards:
        raise UsageError(f"shard must be in [0, num_shards={num_shards}), got {shard}")
    if per_clip < 1:
        raise UsageError(f"per_clip must be >= 1, got {per_clip}")
    if not 0 < min_seconds <= max_seconds:
        raise UsageError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")


def spatialize_corpus(
    in_dir: Path,
    out_dir: Path,
    per_clip: int = 2,
    sample_rate: int = 24000,
    seed: int = 0,
    workers: int = 1,
    shard: int = 0,
    num_shards: int = 1,
    bank_size: int = DEFAULT_BANK_SIZE,
    progress: bool = True,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    write_stats: bool = True,
) -> SpatializeReport:
    """Turn a mono corpus folder into an FOA dataset folder (layout in this module's docstring).

    Each usable source clip is trimmed of silence, repeated to ``min_seconds`` or cropped to ``max_seconds``,
    convolved with ``per_clip`` different room responses of its split, loudness-normalised (W at -20 dBFS RMS,
    peaks <= 0.9; the gain is recorded) and captioned. Unreadable, empty, non-finite and silent clips, and bad
    manifest lines, are listed in ``skipped.jsonl`` and never stop the run.

    Resumable: finished clips are skipped on a re-run and a killed run loses at most the clips in flight; a re-run
    with other settings (:func:`run_settings`) is refused. Ctrl-C stops the workers at once, keeping finished clips.
    With
    ``num_shards > 1`` this call handles clips ``i`` with ``i % num_shards == shard`` and writes its part; whichever
    shard finishes last assembles ``manifest.jsonl`` (or call :func:`assemble_dataset`). Every shard builds the
    missing part of the shared response bank (``out_dir/rir_bank``); its files are deterministic, so concurrent
    builds agree, but to avoid duplicated simulation run one shard first (or a 1-clip run) to build the bank.

    Args:
        in_dir: mono corpus folder (``manifest.jsonl`` + audio).
        out_dir: output folder (created).
        per_clip: spatial versions per source clip, each in a different room.
        sample_rate: output sample rate in Hz (sources are resampled), in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]``
            of :mod:`soundstage.data.rooms`.
        seed: seeds rooms, room choice, crops and caption phrasing.
        workers: processes for simulation and convolution.
        shard, num_shards: this job's part of an array job.
        bank_size: number of simulated rooms (one response each), partitioned ~80/10/10 over splits.
        progress: show tqdm bars.

    Raises:
        UsageError: bad arguments; SettingsError: ``out_dir`` was made with other settings; ManifestError: no
        manifest in ``in_dir``. Nothing is written in these cases.
    """
    start = time.perf_counter()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    check_arguments(shard, num_shards, per_clip, min_seconds, max_seconds)
    bank_config = BankConfig(size=bank_size, sample_rate=sample_rate, seed=seed)
    sources, bad_lines = read_sources(in_dir)
    settings = run_settings(per_clip, min_seconds, max_seconds, bank_config)
    earlier = _earlier_settings(out_dir, settings)
    if earlier is not None:
        check_settings(out_dir, earlier, settings, "an FOA dataset")
    write_json_atomic(out_dir / SETTINGS_NAME, settings, indent=2)
    bank = RirBank(out_dir / "rir_bank", bank_config)
    bank.build(workers=workers, progress=progress)
    pools = {split: bank.split_indices(split) for split in SPLITS}

    report = SpatializeReport(out_dir=out_dir, sources=len(sources))
    mine = [s for s in sources if s.order % num_shards == shard]
    report.shard_clips = len(mine)
    jobs = []
    for source in mine:
        if _read_result(out_dir, source) is not None:
            report.reused += 1
            continue
        split = clip_split(source.clip_id)
        rooms = _choose_rooms(source, pools[split], per_clip, seed)
        jobs.append(ClipJob(source, str(in_dir), str(out_dir), split, rooms, bank.config, sample_rate, seed,
                            min_seconds, max_seconds))
    logger.info("%d clips to spatialise, %d already done (shard %d/%d)", len(jobs), report.reused, shard, num_shards)
    for result in _process_many(jobs, workers, progress):
        if result["status"] == "ok":
            report.processed += 1
            report.written += len(result["records"])

    reasons: Counter[str] = Counter(entry["reason"] for entry in bad_lines if shard == 0)
    part: list[dict[str, Any]] = []
    for source in mine:
        result = _read_result(out_dir, source)
        if result is not None and result["status"] == "ok":
            part.extend(result["records"])
        elif result is not None:
            reasons[result["reason"]] += 1
    report.skip_reasons = dict(reasons)
    report.skipped = sum(reasons.values())
    write_jsonl(out_dir / "parts" / f"part-{shard:03d}-of-{num_shards:03d}.jsonl", part)

    total = assemble_dataset(in_dir, out_dir, write_stats=write_stats)
    report.complete = total is not None
    report.records = total or 0
    report.seconds = time.perf_counter() - start
    logger.info(report.summary())
    return report


# ----------------------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------------------

_HISTOGRAMS: dict[str, np.ndarray] = {
    "azimuth_deg": np.arange(-180.0, 181.0, 30.0),
    "elevation_deg": np.arange(-50.0, 51.0, 10.0),
    "distance_m": np.arange(0.5, 4.01, 0.5),
    "floor_area_m2": np.geomspace(13.3, 277.4, 11),  # log-spaced: sampled log-uniformly
    "t30_s": np.geomspace(0.14, 2.67, 11),
    "drr_db": np.arange(-25.0, 26.0, 5.0),
    "seconds": np.arange(0.0, 15.1, 1.0),
}
_LOG_AXES = ("floor_area_m2", "t30_s")


def _histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
            "mean": float(np.mean(values)) if values.size else None,
            "median": float(np.median(values)) if values.size else None}


def dataset_statistics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per split and class, distinct sources and rooms per split, attribute histograms and caption words."""
    from .captions import spatial_words

    stats: dict[str, Any] = {"clips": len(records)}
    stats["per_split"] = dict(Counter(r["split"] for r in records))
    stats["per_class"] = dict(Counter(str(r.get("class", "unknown")) for r in records).most_common())
    stats["per_class_split"] = {
        cls: dict(Counter(r["split"] for r in records if str(r.get("class", "unknown")) == cls))
        for cls in stats["per_class"]
    }
    stats["sources_per_split"] = {s: len({r["source_clip"] for r in records if r["split"] == s}) for s in SPLITS}
    stats["rooms_per_split"] = {s: len({r["room_id"] for r in records if r["split"] == s}) for s in SPLITS}
    stats["hours"] = sum(r["num_frames"] / r["sample_rate"] for r in records) / 3600.0
    values = {k: np.array([float(r[k]) for r in records if k in r]) for k in _HISTOGRAMS if k != "seconds"}
    values["seconds"] = np.array([r["num_frames"] / r["sample_rate"] for r in records])
    stats["histograms"] = {k: _histogram(v, _HISTOGRAMS[k]) for k, v in values.items()}
    words: Counter[str] = Counter()
    for r in records:
        w = spatial_words(r["azimuth_deg"], r["elevation_deg"], r["distance_m"], r["floor_area_m2"], r["t30_s"])
        words.update(w.all())
    stats["caption_words"] = dict(words.most_common())
    return stats


def write_dataset_stats(folder: Path, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``stats.json`` and ``stats.png`` (attribute histograms, clips per split and class) for a dataset."""
    from .manifest import read_manifest

    folder = Path(folder)
    records = records if records is not None else read_manifest(folder, spatial=True)
    stats = dataset_statistics(records)
    write_json_atomic(folder / "stats.json", stats)
    _plot_stats(stats, folder / "stats.png")
    return stats


def _plot_stats(stats: dict[str, Any], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(stats["histograms"])
    fig, axes = plt.subplots(3, 3, figsize=(13, 10))
    for ax, name in zip(axes.flat, names):
        hist = stats["histograms"][name]
        edges = np.asarray(hist["edges"])
        ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", edgecolor="black")
        ax.set_title(name)
        if name in _LOG_AXES:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks(edges[::2], [f"{e:.3g}" for e in edges[::2]])
    split_ax, class_ax = axes.flat[len(names)], axes.flat[len(names) + 1]
    split_ax.bar(list(stats["per_split"]), list(stats["per_split"].values()))
    split_ax.set_title("clips per split")
    classes = list(stats["per_class"])[:15]
    class_ax.barh(classes[::-1], [stats["per_class"][c] for c in classes][::-1])
    class_ax.set_title("clips per class (top 15)")
    for ax in list(axes.flat)[len(names) + 2 :]:
        ax.axis("off")
    fig.suptitle(f"{stats['clips']} FOA clips, {stats['hours']:.2f} h")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
