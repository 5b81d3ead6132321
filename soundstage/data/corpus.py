"""Building a mono source corpus: validate clips, de-duplicate by content, write FLAC + manifest + report.

Shared by the Debian sound-effect corpus (``sfx.py``) and the CSV importer (``importer.py``). A corpus folder holds
``manifest.jsonl`` (docs/conventions.md section 4: mono keys plus ``class``), ``audio/**.flac`` (mono, original
sample rate) and ``skipped.jsonl`` (one JSON object per clip that was left out, with the reason).

Building is idempotent: a FLAC that already exists with the source's sample rate and length is reused, and the
manifest and skip log are rewritten atomically at the end, so an interrupted run simply resumes.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve
from tqdm import tqdm

from soundstage.common.audio import SILENCE_PEAK, AudioError, audio_info, load_audio, resample, save_audio
from soundstage.common.errors import SoundstageError
from soundstage.data.manifest import MANIFEST_NAME, validate_record, write_jsonl, write_manifest

logger = logging.getLogger(__name__)

SKIPPED_NAME = "skipped.jsonl"
MIN_SECONDS = 0.25
MAX_SECONDS = 60.0

# Content fingerprint: a coarse log-band spectrogram at a low rate, trimmed of silence and resized to a fixed grid,
# so the same recording matches across formats (wav/ogg/flac) and sample rates.
FP_RATE = 8000
FP_FRAME = 256
FP_HOP = 128
FP_BANDS = 16
FP_STEPS = 32
FP_FLOOR_DB = 60.0  # spectrogram cells below peak - 60 dB are clipped
FP_TRIM_DB = 50.0  # leading/trailing frames below peak - 50 dB are trimmed
# Two stages: a cheap spectrogram similarity shortlists candidates, then the normalised cross-correlation of the
# low-rate waveforms confirms them. The spectrogram alone cannot tell two different recordings of steady noise
# (rain, a stream) apart; the waveform can, and it still matches a re-encoded or resampled copy at ~0.99.
DUPLICATE_SIMILARITY = 0.9  # cosine similarity of spectrogram fingerprints (shortlist)
DUPLICATE_CORRELATION = 0.97  # peak normalised cross-correlation of the waveforms (confirmation)
DUPLICATE_DURATION_TOL = 0.03  # relative tolerance on the trimmed duration (and at least 50 ms)


class CorpusError(SoundstageError, ValueError):
    """A build in which no clip could be used: the message gives the first reasons; nothing is written."""


class ClipRejected(Exception):
    """A clip that cannot go into the corpus; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ClipSpec:
    """One clip to add: where its audio is and what the manifest says about it."""

    audio_path: Path  # the file to decode
    rel_path: str  # output path relative to the corpus folder, e.g. "audio/<group>/<name>.flac"
    caption: str
    label: str  # the manifest's "class"
    licence: str
    source: str  # provenance, e.g. "debian:minetest-data/usr/share/..."
    group: str  # package or CSV name, for the per-group counts
    where: str  # human locator for logs, e.g. "minetest-data.csv:12" or "captions.csv:7"
    segment: tuple[float, float] | None = None  # (start, end) seconds of the source to take; None = all of it


@dataclass(frozen=True)
class Skip:
    """A clip (or CSV row) rejected before any audio was read."""

    where: str
    source: str
    reason: str
    detail: str
    group: str = ""


CorpusItem = ClipSpec | Skip


@dataclass
class CorpusReport:
    """What a corpus build produced; ``summary()`` renders it as a small text table."""

    out_dir: Path
    title: str = "corpus"
    group_name: str = "group"
    kept: int = 0
    reused: int = 0
    total_seconds: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count (duplicates not included)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (source, source it duplicates)
    exact_duplicates: int = 0  # of those, identical samples (the rest: near-duplicates by fingerprint)
    per_class: Counter[str] = field(default_factory=Counter)
    per_group: Counter[str] = field(default_factory=Counter)  # per package (sfx) or per CSV (import)
    skipped_per_group: dict[str, Counter[str]] = field(default_factory=dict)  # group -> reason -> count (+duplicates)
    capped: Counter[str] = field(default_factory=Counter)  # class -> clips left out by the class cap
    seconds_per_class: Counter[str] = field(default_factory=Counter)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def num_classes(self) -> int:
        return len(self.per_class)

    def summary(self) -> str:
        """A human-readable table: totals, skip reasons, per-class and per-group counts."""
        lines = [
            (
                f"{self.title}: {self.kept} clips, {self.num_classes} classes, "
                f"{self.total_seconds / 60:.1f} min -> {self.out_dir}"
            ),
            f"  reused existing files: {self.reused}",
            (f"  duplicates dropped: {len(self.duplicates)} (identical samples {self.exact_duplicates}, "
            f"near-duplicates {len(self.duplicates) - self.exact_duplicates})"),
            f"  left out by the class cap: {sum(self.capped.values())}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in self.capped.most_common()) + ")" if self.capped else ""),
            f"  skipped: {self.num_skipped}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) + ")" if self.skipped else ""),
            "",
            f"  {'class':<16}{'clips':>7}{'seconds':>10}",
        ]
        for label, count in sorted(self.per_class.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {label:<16}{count:>7}{self.seconds_per_class[label]:>10.1f}")
        lines += ["", f"  {self.group_name:<24}{'clips':>7}"]
        for group, count in sorted(self.per_group.items()):
            lines.append(f"  {group:<24}{count:>7}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Fingerprint:
    """Content signature of a clip: trimmed duration (s), a unit vector of its coarse spectrogram and its
    unit-norm waveform at ``FP_RATE``."""

    seconds: float
    vector: np.ndarray
    signal: np.ndarray

    def correlation(self, other: Fingerprint) -> float:
        """Peak absolute normalised cross-correlation of the two waveforms over all lags (1.0 = same audio)."""
        return float(np.max(np.abs(fftconvolve(self.signal, other.signal[::-1]))))


def wav_truncation(path: Path) -> str | None:
    """Describe a RIFF/WAVE file whose data chunk claims more bytes than the file holds; None if fine or not WAV.

    libsndfile silently reads what is there, so a truncated download would otherwise pass as a shorter clip.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return None
            pos = 12
            while pos + 8 <= size:
                handle.seek(pos)
                chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
                if chunk_id == b"data":
                    available = size - pos - 8
                    if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                        return f"data chunk declares {chunk_size} bytes but only {available} are present"
                    return None
                pos += 8 + chunk_size + (chunk_size & 1)
    except OSError as exc:
        return f"cannot read file ({exc})"
    return None


def read_mono_clip(
    path: Path,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    segment: tuple[float, float] | None = None,
) -> tuple[np.ndarray, int]:
    """Load a clip (or its ``segment``, (start, end) seconds) as float32 mono ``(samples,)`` at its own rate.

    The length and silence checks apply to what is returned. Raises ClipRejected with a reason code: missing_file,
    unreadable, truncated, empty, non_finite, bad_segment, too_short, too_long, silent.
    """
    if not path.is_file():
        raise ClipRejected("missing_file", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise ClipRejected("empty", f"{path} is a 0-byte file")
    truncation = wav_truncation(path)
    if truncation:
        raise ClipRejected("truncated", f"{path}: {truncation}")
    try:
        audio, sr = load_audio(path, mono=True)
    except AudioError as exc:
        raise ClipRejected(exc.reason, str(exc)) from exc
    except Exception as exc:  # a decoder crash on a corrupt file must not stop the whole build
        raise ClipRejected("unreadable", f"{path}: {exc}") from exc
    mono = audio[0]
    if segment is not None:
        start, end = segment_frames(segment, sr)
        if end > mono.shape[0] + int(0.05 * sr):
            raise ClipRejected("bad_segment", f"segment ends at {segment[1]:g} s but {path} lasts "
                                              f"{mono.shape[0] / sr:.2f} s")
        mono = mono[start:end]
    seconds = mono.shape[0] / sr
    if seconds < min_seconds:
        raise ClipRejected("too_short", f"{seconds:.3f} s < {min_seconds} s")
    if seconds > max_seconds:
        raise ClipRejected("too_long", f"{seconds:.1f} s > {max_seconds} s (take segments of it: member@START-END)")
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        raise ClipRejected("silent", f"peak {peak:.2e} is below {SILENCE_PEAK:.0e} (digital silence)")
    return mono, sr


def segment_frames(segment: tuple[float, float], sample_rate: int) -> tuple[int, int]:
    """(start, end) sample indices of a (start, end) seconds segment."""
    return round(segment[0] * sample_rate), round(segment[1] * sample_rate)


# Log-spaced FFT-bin edges (62 Hz .. 4 kHz at FP_RATE); duplicates from rounding are merged.
_BAND_EDGES = np.unique(np.round(np.geomspace(2, FP_FRAME // 2 + 1, FP_BANDS + 1)).astype(int))


def fingerprint(mono: np.ndarray, sample_rate: int) -> Fingerprint:
    """Fingerprint a mono clip ``(samples,)``: robust to gain, format, sample rate and leading/trailing silence."""
    x = resample(np.asarray(mono, dtype=np.float32)[None], sample_rate, FP_RATE)[0]
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x / peak
    if x.size < FP_FRAME:
        x = np.pad(x, (0, FP_FRAME - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, FP_FRAME)[::FP_HOP] * np.hanning(FP_FRAME)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    bands = np.stack([power[:, lo:hi].sum(axis=1) for lo, hi in itertools.pairwise(_BAND_EDGES)], axis=1)
    frame_db = 10 * np.log10(bands.sum(axis=1) + 1e-12)
    active = np.flatnonzero(frame_db > frame_db.max() - FP_TRIM_DB)
    bands = bands[active[0] : active[-1] + 1]
    seconds = bands.shape[0] * FP_HOP / FP_RATE
    db = 10 * np.log10(_time_grid(bands, FP_STEPS) + 1e-12)
    db = np.clip(db - db.max(), -FP_FLOOR_DB, 0.0)
    vector = db.ravel() - db.mean()
    return Fingerprint(seconds, _unit(vector), _unit(x))


def _time_grid(power: np.ndarray, steps: int) -> np.ndarray:
    """Resize ``(frames, bands)`` power to ``(steps, bands)``: mean over equal segments, or interpolation if short."""
    n = power.shape[0]
    if n >= steps:
        starts = np.linspace(0, n, steps + 1).astype(int)[:-1]
        counts = np.diff(np.append(starts, n))[:, None]
        return np.add.reduceat(power, starts, axis=0) / counts
    t_src, t_dst = np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, steps)
    return np.stack([np.interp(t_dst, t_src, power[:, b]) for b in range(power.shape[1])], axis=1)


def content_digest(mono: np.ndarray, sample_rate: int) -> str:
    """SHA-1 of the clip's rate and 16-bit samples: equal for the same audio decoded from any lossless format
    (and for the FLAC a corpus keeps of it), so exact copies are found without comparing fingerprints."""
    pcm = np.round(np.clip(mono, -1.0, 1.0) * 32767).astype("<i2")
    return hashlib.sha1(str(int(sample_rate)).encode() + pcm.tobytes()).hexdigest()


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class DuplicateIndex:
    """Kept fingerprints; ``find`` returns the key of a clip with the same content, if any."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._seconds: list[float] = []
        self._prints: list[Fingerprint] = []

    def __len__(self) -> int:
        return len(self._keys)

    def find(self, fp: Fingerprint) -> str | None:
        if not self._keys:
            return None
        seconds = np.asarray(self._seconds)
        tolerance = np.maximum(0.05, DUPLICATE_DURATION_TOL * np.maximum(seconds, fp.seconds))
        candidates = np.flatnonzero(np.abs(seconds - fp.seconds) <= tolerance)
        for i in candidates:
            kept = self._prints[i]
            if float(kept.vector @ fp.vector) >= DUPLICATE_SIMILARITY and kept.correlation(fp) >= DUPLICATE_CORRELATION:
                return self._keys[i]
        return None

    def add(self, key: str, fp: Fingerprint) -> None:
        self._keys.append(key)
        self._seconds.append(fp.seconds)
        self._prints.append(fp)


def _reusable(spec: ClipSpec, out_path: Path) -> tuple[np.ndarray, int] | None:
    """The finished FLAC of an earlier run, if it exists and matches the source's (or segment's) rate and length."""
    if not out_path.is_file():
        return None
    try:
        src = audio_info(spec.audio_path)
        audio, sr = load_audio(out_path, channels=1)
    except AudioError:
        return None
    frames = src.num_frames
    if spec.segment is not None:
        start, end = segment_frames(spec.segment, src.sample_rate)
        frames = min(end, frames) - start
    if sr != src.sample_rate or audio.shape[1] != frames:
        return None
    return audio[0], sr


def _load(spec: ClipSpec, out_dir: Path) -> tuple[np.ndarray, int, bool]:
    """Decode one clip (or its segment), or reuse its finished FLAC; returns (mono, rate, reused)."""
    reused = _reusable(spec, out_dir / spec.rel_path)
    if reused is not None:
        return reused[0], reused[1], True
    mono, sr = read_mono_clip(spec.audio_path, segment=spec.segment)
    return mono, sr, False


def _record(spec: ClipSpec, sample_rate: int, num_frames: int) -> dict:
    """The manifest record of a clip (docs/conventions.md section 4 mono keys plus ``class``)."""
    record = {
        "path": spec.rel_path,
        "sample_rate": int(sample_rate),
        "num_frames": int(num_frames),
        "caption": spec.caption,
        "source": spec.source,
        "licence": spec.licence,
        "class": spec.label,
    }
    try:
        validate_record(record, spatial=False)
    except ValueError as exc:
        raise ClipRejected("invalid_record", str(exc)) from exc
    return record


def _write_flac(mono: np.ndarray, sample_rate: int, path: Path) -> None:
    try:
        save_audio(path, mono[None], sample_rate)
    except Exception as exc:  # e.g. a sample rate FLAC cannot store
        raise ClipRejected("unwritable", f"{path}: {exc}") from exc


def _skip_line(where: str, source: str, reason: str, detail: str, **extra: str) -> dict[str, str]:
    return {"where": where, "source": source, "reason": reason, "detail": detail, **extra}


class _Builder:
    """Accumulates records, skip-log lines and the report while clips are added one by one."""

    def __init__(self, out_dir: Path, title: str, group_name: str) -> None:
        self.out_dir = out_dir
        self.report = CorpusReport(out_dir=out_dir, title=title, group_name=group_name)
        self.index = DuplicateIndex()
        self.digests: dict[str, str] = {}  # content_digest -> source
        self.records: list[dict] = []
        self.groups: list[str] = []  # the group of each record
        self.skipped: list[dict] = []
        self.paths: set[str] = set()

    def skip(self, where: str, source: str, reason: str, detail: str, group: str = "") -> None:
        self.report.skipped[reason] += 1
        self._count_skip(group, reason)
        self.skipped.append(_skip_line(where, source, reason, detail))
        logger.info("%s: skipped %s (%s: %s)", where, source, reason, detail)

    def _count_skip(self, group: str, reason: str) -> None:
        if group:
            self.report.skipped_per_group.setdefault(group, Counter())[reason] += 1

    def add(self, spec: ClipSpec) -> None:
        """Validate, de-duplicate and write one clip; a rejected clip is logged, never raised."""
        try:
            if spec.rel_path in self.paths:
                raise ClipRejected("duplicate_path", f"{spec.rel_path} is already used by an earlier clip")
            mono, sr, reused = _load(spec, self.out_dir)
            record = _record(spec, sr, mono.shape[0])
            digest = content_digest(mono, sr)
            if digest in self.digests:
                self._duplicate(spec, self.digests[digest], reused, exact=True)
                return
            fp = fingerprint(mono, sr)
            original = self.index.find(fp)
            if original is not None:
                self._duplicate(spec, original, reused, exact=False)
                return
            if not reused:
                _write_flac(mono, sr, self.out_dir / spec.rel_path)
        except ClipRejected as exc:
            self.skip(spec.where, spec.source, exc.reason, exc.detail, spec.group)
            return
        self.index.add(spec.source, fp)
        self.digests[digest] = spec.source
        self.paths.add(spec.rel_path)
        self.records.append(record)
        self.groups.append(spec.group)
        self._count(spec, mono.shape[0] / sr, reused)

    def _duplicate(self, spec: ClipSpec, original: str, reused: bool, exact: bool) -> None:
        self.report.duplicates.append((spec.source, original))
        self.report.exact_duplicates += int(exact)
        self._count_skip(spec.group, "duplicate")
        detail = "identical samples" if exact else "same audio content (spectral fingerprint and waveform correlation)"
        self.skipped.append(_skip_line(spec.where, spec.source, "duplicate", detail, duplicate_of=original))
        logger.info("%s: %s duplicates %s", spec.where, spec.source, original)
        if reused:  # written by an earlier run whose clip order differed; it is no longer part of the corpus
            (self.out_dir / spec.rel_path).unlink(missing_ok=True)

    def _count(self, spec: ClipSpec, seconds: float, reused: bool) -> None:
        report = self.report
        report.kept += 1
        report.reused += int(reused)
        report.total_seconds += seconds
        report.per_class[spec.label] += 1
        report.seconds_per_class[spec.label] += seconds
        report.per_group[spec.group] += 1

    def cap(self, max_fraction: float) -> None:
        """Leave out clips of classes above ``max_fraction`` of the corpus (see :func:`class_cap`): which ones is
        decided by a hash of their source, so the choice is stable across runs. Their files are removed."""
        limit = class_cap(Counter(r["class"] for r in self.records), max_fraction)
        by_class: dict[str, list[int]] = {}
        for i, record in enumerate(self.records):
            by_class.setdefault(record["class"], []).append(i)
        drop: set[int] = set()
        for indices in by_class.values():
            if len(indices) > limit:
                ranked = sorted(indices, key=lambda i: hashlib.sha1(self.records[i]["source"].encode()).hexdigest())
                drop.update(ranked[limit:])
        for i in sorted(drop):
            record, group = self.records[i], self.groups[i]
            seconds = record["num_frames"] / record["sample_rate"]
            report = self.report
            report.kept -= 1
            report.total_seconds -= seconds
            report.per_class[record["class"]] -= 1
            report.seconds_per_class[record["class"]] -= seconds
            report.per_group[group] -= 1
            report.capped[record["class"]] += 1
            self._count_skip(group, "class_cap")
            self.skipped.append(_skip_line(record["path"], record["source"], "class_cap",
                                           f"class {record['class']!r} is capped at {limit} clips "
                                           f"({max_fraction:.0%} of the corpus)"))
            (self.out_dir / record["path"]).unlink(missing_ok=True)
        self.records = [r for i, r in enumerate(self.records) if i not in drop]
        self.groups = [g for i, g in enumerate(self.groups) if i not in drop]

    def finish(self) -> CorpusReport:
        """Write the manifest and the skip log; CorpusError, writing nothing, when no clip was kept."""
        if not self.records:
            raise CorpusError(self._nothing_kept())
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(self.out_dir / MANIFEST_NAME, self.records)
        write_jsonl(self.out_dir / SKIPPED_NAME, self.skipped)
        if self.skipped:
            examples = "".join(f"\n  {r['where']}: {r['reason']} ({r['detail']})" for r in self.skipped[:5])
            logger.warning(
                "%s: %d clips skipped and %d duplicates dropped; all reasons in %s, e.g.:%s",
                self.report.title,
                self.report.num_skipped,
                len(self.report.duplicates),
                self.out_dir / SKIPPED_NAME,
                examples,
            )
        return self.report

    def _nothing_kept(self) -> str:
        """One line: how many clips were refused, and the first reasons with their CSV lines or sources."""
        reasons = "; ".join(f"{r['where']}: {r['reason']} ({r['detail']})" for r in self.skipped[:3])
        more = f"; ... ({len(self.skipped) - 3} more)" if len(self.skipped) > 3 else ""
        return (f"{self.report.title}: none of the {len(self.skipped)} clips could be used, so nothing was written "
                f"to {self.out_dir}: {reasons}{more}")


def write_corpus(
    items: Iterable[CorpusItem],
    out_dir: Path,
    *,
    title: str,
    group_name: str,
    total: int | None = None,
    progress: bool = True,
    max_class_fraction: float | None = None,
) -> CorpusReport:
    """Validate, de-duplicate and write every clip; then write the manifest and ``skipped.jsonl`` atomically.

    Items are processed in order, so the first of a set of duplicates is the one kept. With ``max_class_fraction``,
    classes above that share of the kept clips are cut down (:meth:`_Builder.cap`). Never raises for a bad clip:
    each is logged, counted in the report and written to the skip log. When no clip is kept at all, raises
    CorpusError with the first reasons and writes nothing (an earlier manifest in ``out_dir`` is left as it was).
    """
    builder = _Builder(Path(out_dir), title, group_name)
    for item in tqdm(items, total=total, desc=title, unit="clip", disable=not progress):
        if isinstance(item, Skip):
            builder.skip(item.where, item.source, item.reason, item.detail, item.group)
        else:
            builder.add(item)
    if max_class_fraction is not None and builder.records:
        builder.cap(max_class_fraction)
    return builder.finish()


def class_cap(counts: Counter[str], max_fraction: float) -> int:
    """The largest per-class count ``c`` such that, with every class cut to at most ``c`` clips, ``c`` is at most
    ``max_fraction`` of the total. Fewer than ``1 / max_fraction`` classes cannot meet any cap: then nothing is cut
    (the largest count is returned) and a warning says so."""
    for cap in range(max(counts.values()), 0, -1):
        if cap <= max_fraction * sum(min(n, cap) for n in counts.values()):
            return cap
    logger.warning("%d classes cannot each stay under %.0f%% of the corpus; no class is capped",
                   len(counts), 100 * max_fraction)
    return max(counts.values())
